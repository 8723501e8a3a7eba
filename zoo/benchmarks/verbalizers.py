"""Input templates and label words of text-to-text fine-tuning (T5, Raffel et al. 2020, appendix D).

GLUE follows T5's preprocessing exactly: the task name, then each field as ``name: text`` in the
alphabetical order of the field names (so MNLI reads ``mnli hypothesis: ... premise: ...``), and the
label as the word of the dataset's label name (``acceptable``, ``not_entailment``, ...). STS-B is a
regression written as a number rounded to the nearest 0.2 (``3.8``).

CLUE (not in T5) follows the same scheme with Chinese field names and Chinese label words, chosen here:
AFQMC 相同/不同 (same/different); TNEWS the two-character category names of the CLUE prompts (故事 news_story,
文化 news_culture, ...); IFLYTEK the official ``label_des`` of the release's ``labels.json`` (打车, 地图导航,
...); CMNLI/OCNLI 蕴含/中立/矛盾 (entailment/neutral/contradiction); CLUEWSC2020 是/否 (true/false);
CSL 是/否 (all keywords real: yes/no).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zoo.errors import ConfigError


@dataclass(frozen=True)
class Template:
    """``prefix name1: text name2: text`` -> label word. ``fields`` are (field name, "a" | "b") in the
    order they are written; ``words`` maps the task's label values to words (None: regression)."""

    prefix: str
    fields: tuple[tuple[str, str], ...]
    words: Mapping[str, str] | None


def _single(prefix: str, name: str, words: Mapping[str, str] | None) -> Template:
    return Template(prefix, ((name, "a"),), words)


def _pair(prefix: str, first: str, second: str, words: Mapping[str, str] | None) -> Template:
    return Template(prefix, ((first, "a"), (second, "b")), words)


_NLI2 = {"entailment": "entailment", "not_entailment": "not_entailment"}
_NLI3_ZH = {"entailment": "蕴含", "neutral": "中立", "contradiction": "矛盾"}
_TNEWS = dict(zip([str(i) for i in range(100, 117) if i not in (105, 111)],
                  ["故事", "文化", "娱乐", "体育", "财经", "房产", "汽车", "教育", "科技", "军事", "旅游", "国际", "证券",
                   "农业", "电竞"], strict=True))
_IFLYTEK_WORDS = (
    "打车 地图导航 免费WIFI 租车 同城服务 快递物流 婚庆 家政 公共交通 政务 社区服务 薅羊毛 魔幻 仙侠 卡牌 飞行空战 射击游戏 "
    "休闲益智 动作类 体育竞技 棋牌中心 经营养成 策略 MOBA 辅助工具 约会社交 即时通讯 工作社交 论坛圈子 婚恋社交 情侣社交 "
    "社交工具 生活社交 微博博客 新闻 漫画 小说 技术 教辅 问答交流 搞笑 杂志 百科 影视娱乐 求职 兼职 视频 短视频 音乐 直播 "
    "电台 K歌 成人 中小学 职考 公务员 英语 视频教育 高等教育 成人教育 艺术 语言(非英语) 旅游资讯 综合预定 民航 铁路 酒店 "
    "行程管理 民宿短租 出国 工具 亲子儿童 母婴 驾校 违章 汽车咨询 汽车交易 日常养车 行车辅助 租房 买房 装修家居 电子产品 "
    "问诊挂号 养生保健 医疗服务 减肥瘦身 美妆美业 菜谱 餐饮店 体育咨讯 运动健身 支付 保险 股票 借贷 理财 彩票 记账 银行 "
    "美颜 影像剪辑 摄影修图 相机 绘画 二手 电商 团购 外卖 电影票务 社区超市 购物咨询 笔记 办公 日程管理 女性 经营 收款 其他"
).split()
_IFLYTEK = {str(i): w for i, w in enumerate(_IFLYTEK_WORDS)}

TEMPLATES: dict[str, Template] = {
    # GLUE, as T5's preprocessors write them
    "cola": _single("cola", "sentence", {"0": "unacceptable", "1": "acceptable"}),
    "sst2": _single("sst2", "sentence", {"0": "negative", "1": "positive"}),
    "mrpc": _pair("mrpc", "sentence1", "sentence2", {"0": "not_equivalent", "1": "equivalent"}),
    "stsb": _pair("stsb", "sentence1", "sentence2", None),
    "qqp": _pair("qqp", "question1", "question2", {"0": "not_duplicate", "1": "duplicate"}),
    "mnli": Template("mnli", (("hypothesis", "b"), ("premise", "a")),
                     {"entailment": "entailment", "neutral": "neutral", "contradiction": "contradiction"}),
    "qnli": _pair("qnli", "question", "sentence", _NLI2),
    "rte": _pair("rte", "sentence1", "sentence2", _NLI2),
    "wnli": _pair("wnli", "sentence1", "sentence2", {"0": "not_entailment", "1": "entailment"}),
    # CLUE: the same scheme, Chinese field names and label words
    "afqmc": _pair("afqmc", "句子一", "句子二", {"0": "不同", "1": "相同"}),
    "tnews": _single("tnews", "标题", _TNEWS),
    "iflytek": _single("iflytek", "描述", _IFLYTEK),
    "cmnli": Template("cmnli", (("假设", "b"), ("前提", "a")), _NLI3_ZH),
    "ocnli": Template("ocnli", (("假设", "b"), ("前提", "a")), _NLI3_ZH),
    "cluewsc": _single("cluewsc", "句子", {"true": "是", "false": "否"}),
    "csl": _pair("csl", "关键词", "摘要", {"0": "否", "1": "是"}),
}


def template_for(task: str, labels: tuple[str, ...] | None) -> Template:
    """The task's template, checked against its label list (``TaskData.labels``): a ``ConfigError`` for a
    task without one or a label without a word."""
    t = TEMPLATES.get(task)
    if t is None:
        raise ConfigError(f"method=text-to-text: task {task!r} has no input template and label words "
                          f"(known: {', '.join(TEMPLATES)}); use --bench-set method=head")
    if (labels is None) != (t.words is None):
        raise ConfigError(f"method=text-to-text: task {task!r} is {'a regression' if labels is None else 'a classification'}"
                          f" task here but its template is not")
    missing = [lab for lab in labels or () if lab not in (t.words or {})]
    if missing:
        raise ConfigError(f"method=text-to-text: task {task!r} has no label word for label(s) {missing[:5]}")
    return t


def stsb_string(value: float) -> str:
    """T5's STS-B target: the score rounded to the nearest 0.2 (ties to even, as ``tf.round``), one decimal."""
    return f"{round(float(value) * 5) / 5:.1f}"


STSB_CANDIDATES = tuple(stsb_string(i / 5) for i in range(26))  # 0.0, 0.2, ..., 5.0 (rank classification)
