"""``zoo train --init``: continued pretraining from transformers directories, the hub cache and zoo runs.

Round trip: a zoo run exported with ``zoo export`` and used as ``--init`` starts with bit-identical
weights, and its first batch's loss equals the loss ``transformers`` computes for the exported model
on the same batch. A directory written by transformers' own ``save_pretrained`` works too. Every
unsupported checkpoint is a one-line error, and nothing is ever unpickled.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from zoo.cli import cli
from zoo.errors import CheckpointError, ConfigError
from zoo.export import export_hf
from zoo.runs import open_run
from zoo.train import checkpoint as ckpt
from zoo.train.resolve import resolve
from zoo.train.trainer import Trainer, train

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
TRAIN = {"budget": "2steps", "seq_len": 32, "batch_size": 4, "eval_every": 0, "eval_batches": 1, "prefetch": False}


def _config(corpus: Path, out: Path, **top) -> dict:
    return {"out": str(out), "data": {"source": str(corpus), "doc_boundary": "blank-line"},
            "train": dict(TRAIN), **top}


@pytest.fixture(scope="module")
def scratch(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """Tiny runs trained from random weights for 2 steps, and their exports (once per module)."""
    root = tmp_path_factory.mktemp("init-runs")
    done: dict[tuple[str, str], tuple[Path, Path]] = {}

    def make(objective: str, backbone: str) -> tuple[Path, Path]:
        if (objective, backbone) not in done:
            run = root / f"{backbone}-{objective}"
            train(resolve({**_config(corpus, run, objective=objective, backbone=backbone, size="tiny"),
                           "model": dict(TINY), "tokenizer": {"vocab_size": 400, "num_sentinels": 20},
                           "optim": {"lr": 1e-2, "warmup": 0.0}}))
            exported = root / f"hf-{backbone}-{objective}"
            export_hf(run, exported)
            done[(objective, backbone)] = (run, exported)
        return done[(objective, backbone)]

    return make


def _setup(cfg: dict) -> Trainer:
    trainer = Trainer(resolve(cfg))
    trainer.setup()
    return trainer


@pytest.mark.parametrize(("objective", "backbone"), [("mlm+nsp", "bert"), ("clm", "gpt"), ("span-lm", "t5")])
def test_exported_run_round_trip_bit_identical(scratch, corpus: Path, tmp_path: Path, objective: str,
                                               backbone: str) -> None:
    run, exported = scratch(objective, backbone)
    trainer = _setup({**_config(corpus, tmp_path / "continued", objective=objective),
                      "init": {"source": str(exported)}})
    assert trainer.cfg.backbone == backbone and trainer.cfg.model["num_layers"] == 2
    assert trainer.cfg.optim.lr == 1e-4  # the continued-pretraining default
    original = open_run(run).load_model().state_dict()
    continued = trainer.model.state_dict()
    assert original.keys() == continued.keys()
    for key, tensor in original.items():
        assert torch.equal(tensor, continued[key]), key
    record = json.loads((trainer.run_dir / "run.json").read_text())["init"]
    assert record["sha256"] == ckpt.sha256_file(exported / "model.safetensors")
    assert record["sha256"] == json.loads((trainer.run_dir / "config.json").read_text())["init"]["sha256"]
    assert all(v != "new" for v in record["heads"].values()), record["heads"]


def test_first_batch_loss_equals_transformers(scratch, corpus: Path, tmp_path: Path) -> None:
    from transformers import BertForPreTraining

    _, exported = scratch("mlm+nsp", "bert")
    trainer = _setup({**_config(corpus, tmp_path / "continued", objective="mlm+nsp"),
                      "init": {"source": str(exported)}})
    _, micro = next(trainer._step_batches())
    batch = micro[0][1]
    trainer.model.eval()
    with torch.no_grad():
        ours = float(trainer.model(batch.to("cpu")).loss)
    hf = BertForPreTraining.from_pretrained(str(exported)).eval()
    b = batch.to("cpu")
    labels = torch.full_like(b.input_ids, -100)  # (B, T): the masked positions' original tokens
    t = b.targets["mlm"]
    for r in range(labels.shape[0]):
        keep = t["labels"][r] != -100
        labels[r, t["positions"][r][keep]] = t["labels"][r][keep]
    with torch.no_grad():
        out = hf(input_ids=b.input_ids, token_type_ids=b.token_type_ids, attention_mask=(b.doc_ids >= 0).long(),
                 position_ids=b.position_ids, labels=labels, next_sentence_label=b.targets["nsp"]["labels"])
    assert abs(ours - float(out.loss)) < 1e-5, (ours, float(out.loss))


def _t5_first_batch_losses(trainer: Trainer, hf_dir: Path) -> tuple[float, float]:
    """(our span-lm loss, T5ForConditionalGeneration's from ``hf_dir``) on the trainer's first batch, with its
    labels (transformers shifts them right into the decoder input, as we do)."""
    from transformers import T5ForConditionalGeneration

    _, micro = next(trainer._step_batches())
    b = micro[0][1].to("cpu")
    trainer.model.eval()
    with torch.no_grad():
        ours = float(trainer.model(b).loss)
        hf = T5ForConditionalGeneration.from_pretrained(str(hf_dir)).eval()
        out = hf(input_ids=b.input_ids, attention_mask=(b.doc_ids >= 0).long(),
                 decoder_attention_mask=(b.decoder_doc_ids >= 0).long(), labels=b.targets["span-lm"]["labels"])
    return ours, float(out.loss)


def test_t5_first_batch_loss_equals_transformers(scratch, corpus: Path, tmp_path: Path) -> None:
    """T5 span corruption from an exported t5 run: our first-batch loss is T5ForConditionalGeneration's
    with the batch's labels (transformers shifts them right into the decoder input, as we do)."""

    _, exported = scratch("span-lm", "t5")
    trainer = _setup({**_config(corpus, tmp_path / "continued", objective="span-lm"), "init": {"source": str(exported)}})
    assert trainer.cfg.backbone == "t5"
    ours, theirs = _t5_first_batch_losses(trainer, exported)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)


def test_transformers_saved_directory(corpus: Path, tmp_path: Path) -> None:
    """save_pretrained of a random BertForPreTraining + BertTokenizerFast is a valid --init."""
    from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

    from zoo.data import train_tokenizer

    ours = train_tokenizer(corpus.read_text().split("\n\n"), "wordpiece", vocab_size=300, num_sentinels=0)
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "vocab.txt").write_text(
        "".join(f"{t}\n" for t, _ in sorted(ours.get_vocab().items(), key=lambda kv: kv[1])))
    hf_dir = tmp_path / "hf"
    hf_tok = BertTokenizerFast.from_pretrained(str(tmp_path / "vocab"))
    hf_tok.backend_tokenizer.enable_truncation(16)  # saved in tokenizer.json; must not cut the corpus
    hf_tok.save_pretrained(str(hf_dir))
    torch.manual_seed(1)
    config = BertConfig(vocab_size=ours.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=64)
    model = BertForPreTraining(config)
    model.save_pretrained(str(hf_dir))
    out = tmp_path / "continued"
    trainer = _setup({**_config(corpus, out, objective="mlm+nsp"), "init": {"source": str(hf_dir)}})
    assert trainer.cfg.model["intermediate_size"] == 48 and trainer.data.stats["tokenizer_source"] == "init"
    assert json.loads((hf_dir / "tokenizer.json").read_text())["truncation"] is not None
    assert trainer.data.train.num_tokens > 100 * trainer.data.train.num_documents()  # 16 per 4,000 characters if cut
    state = model.state_dict()
    for key, tensor in trainer.model.backbone.hf_state_dict().items():
        assert torch.equal(tensor, state[f"bert.{key}"]), key
    mlm = trainer.model.heads["mlm"]
    assert torch.equal(mlm.dense.weight, state["cls.predictions.transform.dense.weight"])
    assert torch.equal(trainer.model.heads["nsp"].classifier.weight, state["cls.seq_relationship.weight"])
    result = trainer.fit()
    assert result.step == 2
    heads = json.loads((out / "run.json").read_text())["init"]["heads"]
    assert heads == {"mlm": "cls.predictions", "nsp": "bert.pooler + cls.seq_relationship"}
    exported = export_hf(out, tmp_path / "exported")  # zoo export writes the loaded heads back
    assert exported.architecture == "BertForPreTraining"


def test_transformers_saved_t5_directory(corpus: Path, tmp_path: Path) -> None:
    """save_pretrained of a random tiny T5ForConditionalGeneration beside a T5-style tokenizer (<pad>,
    </s>, <unk>, <extra_id_N>) is a valid --init: span corruption trains from its weights, and the first
    batch's loss is the one transformers computes for that directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    specials = ["<pad>", "</s>", "<unk>", *(f"<extra_id_{i}>" for i in range(20))]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(corpus.read_text().split("\n\n"), trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    hf_dir = tmp_path / "hf"
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(hf_dir))
    torch.manual_seed(1)
    config = T5Config(vocab_size=tok.get_vocab_size(), d_model=32, d_kv=16, d_ff=64, num_layers=2,
                      num_decoder_layers=2, num_heads=2, relative_attention_num_buckets=8,
                      relative_attention_max_distance=16, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0)
    model = T5ForConditionalGeneration(config).eval()
    model.save_pretrained(str(hf_dir))
    trainer = _setup({**_config(corpus, tmp_path / "continued", objective="span-lm"),
                      "init": {"source": str(hf_dir)}})
    assert trainer.cfg.backbone == "t5" and trainer.data.stats["tokenizer_source"] == "init"
    assert trainer.cfg.model["hidden_size"] == 32 and trainer.cfg.model["num_layers"] == 2
    state = model.state_dict()
    for key, tensor in trainer.model.backbone.hf_state_dict().items():
        assert torch.equal(tensor, state[key]), key
    ours, theirs = _t5_first_batch_losses(trainer, hf_dir)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)
    record = json.loads((trainer.run_dir / "run.json").read_text())["init"]
    assert record["architecture"] == "T5ForConditionalGeneration" and record["heads"]["span-lm"].startswith("lm_head")
    assert trainer.fit().step == 2


def test_zoo_run_and_step_as_init_resume_never_rereads(scratch, corpus: Path, tmp_path: Path) -> None:
    run, _ = scratch("mlm+nsp", "bert")
    copy = tmp_path / "source-run"
    shutil.copytree(run, copy)
    step_dir = copy / ckpt.step_name(2)
    for source in (copy, step_dir):
        trainer = _setup({**_config(corpus, tmp_path / f"from-{source.name}", objective="mlm+sop"),
                          "init": {"source": str(source)}})
        record = json.loads((trainer.run_dir / "run.json").read_text())["init"]
        assert record["heads"] == {"mlm": "heads.mlm", "sop": "new"} and record["unused"] == ["heads.nsp"]
        assert record["step"] == 2
    out = tmp_path / "continued"
    cfg = {**_config(corpus, out, objective="mlm"), "init": {"source": str(copy)}}
    cfg["train"]["checkpoint_every"] = 1
    cfg["optim"] = {**cfg.get("optim", {}), "schedule": "trapezoid"}  # a finished budget it may extend
    train(resolve(cfg))
    shutil.rmtree(copy)  # the source is gone: resuming must not need it
    cfg["train"]["budget"] = "3steps"
    assert train(resolve(cfg)).step == 3
    assert json.loads((out / "run.json").read_text())["init"]["source"] == str(copy)


def _hub_cache(root: Path, repo: str, files: Path) -> str:
    """A Hugging Face hub cache entry for ``repo`` holding ``files`` (the layout huggingface_hub writes)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    entry = root / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    shutil.copytree(files, entry / "snapshots" / commit)
    return commit


def test_hub_name_through_the_cache_and_offline_error(scratch, corpus: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    _, exported = scratch("mlm+nsp", "bert")
    cache = tmp_path / "hub"
    commit = _hub_cache(cache, "someone/zoo-bert", exported)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    trainer = _setup({**_config(corpus, tmp_path / "continued", objective="mlm"),
                      "init": {"source": "hf:someone/zoo-bert"}})
    record = trainer.init_record
    assert record is not None and record.kind == "hub" and record.revision == commit
    assert trainer.cfg.init.revision == "" and trainer.cfg.init.sha256 == ""  # the run's config is left as given
    saved = json.loads((trainer.run_dir / "config.json").read_text())["init"]
    assert saved == {"source": "hf:someone/zoo-bert", "revision": commit, "sha256": record.sha256}
    assert json.loads((trainer.run_dir / "run.json").read_text())["init"] == record.to_dict()
    with pytest.raises(CheckpointError, match=r"hf:someone/missing is not in the local Hugging Face cache and "
                                              r"HF_HUB_OFFLINE=1"):
        resolve({"objective": "mlm", "init": {"source": "hf:someone/missing"}})


def _save_config(path: Path, config) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("kind", ["roberta", "bart", "llama"])
def test_unsupported_architectures(tmp_path: Path, kind: str) -> None:
    import transformers

    cls = {"roberta": transformers.RobertaConfig, "bart": transformers.BartConfig, "llama": transformers.LlamaConfig}[kind]
    path = _save_config(tmp_path / kind, cls())
    with pytest.raises(CheckpointError, match=rf"model_type '{kind}'.*not supported.*BertForPreTraining") as err:
        resolve({"objective": "mlm", "init": {"source": str(path)}})
    assert "\n" not in str(err.value)


def test_bad_directories(scratch, corpus: Path, tmp_path: Path) -> None:
    _, exported = scratch("mlm+nsp", "bert")
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(exported, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        resolve({"objective": "mlm", "init": {"source": str(no_tok)}})

    marker = tmp_path / "unpickled"
    pickled = tmp_path / "pickle-only"
    shutil.copytree(exported, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(str(marker))))
    with pytest.raises(CheckpointError, match="pytorch_model.bin, a pickle, which objective-zoo never loads"):
        resolve({"objective": "mlm", "init": {"source": str(pickled)}})
    assert not marker.exists()

    mismatch = tmp_path / "mismatch"
    shutil.copytree(exported, mismatch)
    config = json.loads((mismatch / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (mismatch / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit config.json"):
        _setup({**_config(corpus, tmp_path / "x", objective="mlm"), "init": {"source": str(mismatch)}})

    with pytest.raises(CheckpointError, match="has sha256 .* but init.sha256 is 0000"):
        _setup({**_config(corpus, tmp_path / "y", objective="mlm"),
                "init": {"source": str(exported), "sha256": "0" * 64}})

    with pytest.raises(CheckpointError, match="neither a transformers directory"):
        resolve({"objective": "mlm", "init": {"source": str(tmp_path)}})


class _Trap:
    """Unpickling this creates a file: proof that a loader unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize(("setting", "message"), [
    ({"backbone": "gpt"}, r"--backbone gpt conflicts with --init .*: it holds a bert model"),
    ({"size": "base"}, r"--size base \(12 layers x 768\) conflicts with --init .*: 2 layers x 32"),
    ({"tokenizer": {"vocab_size": 123}}, r"--vocab-size 123 conflicts with --init .*: its tokenizer has \d+ tokens"),
    ({"model": {"num_layers": 5}}, r"model.num_layers = 5 conflicts with --init .*: its num_layers is 2"),
    ({"tokenizer": {"path": "tok.json"}}, r"--tokenizer tok.json conflicts with --init"),
])
def test_conflicting_settings(scratch, setting: dict, message: str) -> None:
    _, exported = scratch("mlm+nsp", "bert")
    with pytest.raises(ConfigError, match=message):
        resolve({"objective": "mlm", "init": {"source": str(exported)}, **setting})


def test_cli_one_line_error(scratch) -> None:
    _, exported = scratch("mlm+nsp", "bert")
    result = CliRunner().invoke(cli, ["train", "--objective", "mlm", "--backbone", "gpt", "--init", str(exported)])
    assert result.exit_code == 2
    assert "--backbone gpt conflicts with --init" in result.output


def test_compare_names_continued_runs() -> None:
    from types import SimpleNamespace

    from zoo.compare.runner import _consistency_notes
    from zoo.train.config import InitConfig, RunConfig

    runs = [SimpleNamespace(config=RunConfig(), info={}),
            SimpleNamespace(config=RunConfig(init=InitConfig(source="runs/base")), info={})]
    infos = [SimpleNamespace(name="scratch", steps=0), SimpleNamespace(name="continued", steps=0)]
    assert any("continued (from runs/base)" in n for n in _consistency_notes(infos, runs))


def test_init_is_located_once_during_resolution(scratch, corpus: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``resolve`` locates the ``--init`` source and hands it to the trainer, which does not read it again."""
    from zoo.train import init as init_mod
    from zoo.typed_config import to_dict

    _, exported = scratch("clm", "gpt")
    calls = []
    real = init_mod.locate
    monkeypatch.setattr(init_mod, "locate", lambda *a, **k: calls.append(a) or real(*a, **k))
    trainer = _setup({**_config(corpus, tmp_path / "continued", objective="clm"), "init": {"source": str(exported)}})
    assert len(calls) == 1 and trainer.init is trainer.cfg.located_init and trainer.init.path == exported
    assert "located_init" not in to_dict(trainer.cfg)
    assert trainer.init_record.architecture == "GPT2LMHeadModel"
