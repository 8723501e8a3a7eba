"""``zoo export RUN --to hf OUT``: tiny runs trained for 2 steps, exported, loaded back with
``transformers`` Auto classes (offline, no remote code), and compared with the run's own model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from zoo import registry
from zoo.cli import cli
from zoo.errors import ConfigError
from zoo.export import export_hf
from zoo.models.attention import AttentionLayout
from zoo.objectives.spec import parse_spec, path_name
from zoo.runs import open_run
from zoo.train import checkpoint as ckpt
from zoo.train.resolve import resolve
from zoo.train.trainer import train

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Return the number of items in a container.",
    "An expression statement evaluates the expression list.",
]
PAIR = ("The for statement is used to iterate over the elements of a sequence.",
        "It is executed once for each item.")

# (objective, backbone, exported class, the Auto class that loads it)
CASES = [
    ("mlm+nsp", "bert", "BertForPreTraining", "AutoModelForPreTraining"),
    ("mlm", "bert", "BertForMaskedLM", "AutoModelForMaskedLM"),
    ("mlm+sop", "bert", "BertForMaskedLM", "AutoModelForMaskedLM"),
    ("span", "bert", "BertForMaskedLM", "AutoModelForMaskedLM"),
    ("nsp", "bert", "BertForNextSentencePrediction", "AutoModelForNextSentencePrediction"),
    ("sop", "bert", "BertModel", "AutoModel"),
    ("rtd", "bert", "BertModel", "AutoModel"),
    ("clm", "gpt", "GPT2LMHeadModel", "AutoModelForCausalLM"),
    ("prefix", "gpt", "GPT2LMHeadModel", "AutoModelForCausalLM"),
    ("span", "gpt", "GPT2LMHeadModel", "AutoModelForCausalLM"),
    ("mntp:15|clm:1", "gpt", "GPT2LMHeadModel", "AutoModelForCausalLM"),  # a mixture sharing the LM head
]
# The cramming options: bias-free layers export with zero biases, pre-LN bert as RoBERTa-PreLayerNorm.
# (objective, backbone, model options, exported class, Auto class); the cpu-hour recipe is gpt without biases.
OPTION_CASES = [
    ("clm", "gpt", {"bias": False}, "GPT2LMHeadModel", "AutoModelForCausalLM"),
    ("mntp:15|clm:1", "gpt", {"bias": False}, "GPT2LMHeadModel", "AutoModelForCausalLM"),
    ("mlm", "gpt", {"bias": False}, "GPT2Model", "AutoModel"),
    ("mlm", "bert", {"bias": False}, "BertForMaskedLM", "AutoModelForMaskedLM"),
    ("mlm", "bert", {"norm_position": "pre", "bias": False}, "RobertaPreLayerNormForMaskedLM",
     "AutoModelForMaskedLM"),
    ("mlm+nsp", "bert", {"norm_position": "pre"}, "RobertaPreLayerNormForMaskedLM", "AutoModelForMaskedLM"),
    ("sop", "bert", {"norm_position": "pre"}, "RobertaPreLayerNormModel", "AutoModel"),
]
TOLERANCE = 1e-5



@pytest.fixture(scope="module")
def make_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """Train (once per module) a tiny run for 2 steps; returns its directory."""
    root = tmp_path_factory.mktemp("runs")
    done: dict[tuple, Path] = {}

    def make(objective: str, backbone: str, **model: object) -> Path:
        key = (objective, backbone, *sorted(model.items()))
        if key not in done:
            out = root / "-".join(str(k) for k in (backbone, path_name(objective), *model.values()))
            train(resolve({
                "objective": objective, "backbone": backbone, "size": "tiny", "out": str(out),
                "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, **model},
                "data": {"source": str(corpus), "doc_boundary": "blank-line"},
                "tokenizer": {"vocab_size": 400, "num_sentinels": 20},
                "optim": {"lr": 1e-2, "warmup": 0.0},  # large steps: trained weights differ from the init
                "train": {"budget": "2steps", "seq_len": 32, "batch_size": 4, "eval_every": 0,
                          "eval_batches": 1, "prefetch": False},
            }))
            done[key] = out
        return done[key]

    return make


def _encode(tokenizer, pair: bool) -> dict[str, torch.Tensor]:
    """Padded batch of SENTENCES (and PAIR for encoders) from the run's own tokenizer."""
    encs = [tokenizer.encode(s) for s in SENTENCES] + ([tokenizer.encode(*PAIR)] if pair else [])
    length = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), length, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, e in enumerate(encs):
        n = len(e.ids)
        ids[r, :n], types[r, :n], mask[r, :n] = torch.tensor(e.ids), torch.tensor(e.type_ids), 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def _max_diff(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    """Max |difference| over real (non-padding) positions. ours/theirs: (B, T, ...) or (B, ...)."""
    if ours.dim() >= 2 and ours.shape[:2] == mask.shape:
        ours, theirs = ours[mask.bool()], theirs[mask.bool()]
    return float((ours - theirs).abs().max())


ALL_CASES = [(o, b, {}, a, auto) for o, b, a, auto in CASES] + OPTION_CASES


@pytest.mark.parametrize(("objective", "backbone", "options", "architecture", "auto"), ALL_CASES,
                         ids=[f"{b}-{o}" + "".join(f"-{k}={v}" for k, v in m.items()) for o, b, m, _, _ in ALL_CASES])
def test_export_loads_in_transformers_and_matches(make_run, tmp_path: Path, objective: str, backbone: str,
                                                  options: dict, architecture: str, auto: str) -> None:
    import transformers

    missing = [p for p in parse_spec(objective).names if p not in registry.names("objective")]
    if missing:
        pytest.skip(f"objective {missing[0]!r} is not installed (rtd: pip install ./examples/zoo-electra)")
    run_dir = make_run(objective, backbone, **options)
    out = tmp_path / "hf"
    result = export_hf(run_dir, out)
    assert result.architecture == architecture and result.max_abs_diff <= TOLERANCE

    run = open_run(run_dir)
    model = run.load_model().eval()
    tokens = run.special_tokens()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [architecture]
    assert config["pad_token_id"] == tokens.pad
    if backbone == "bert":
        assert (config["cls_token_id"], config["sep_token_id"], config["mask_token_id"]) == \
            (tokens.cls, tokens.sep, tokens.mask)
        assert config["bos_token_id"] is None and config["eos_token_id"] is None
    else:
        assert config["bos_token_id"] == config["eos_token_id"] == tokens.eos
        assert config["mask_token_id"] == tokens.mask
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "README.md", "zoo_export.json"} <= {p.name for p in out.iterdir()}

    hf = getattr(transformers, auto).from_pretrained(str(out)).eval()  # local files; never remote code
    assert type(hf).__name__ == architecture

    encoder = backbone == "bert"
    inputs = _encode(run.tokenizer(), pair=encoder)
    mask = inputs["attention_mask"]
    doc_ids = torch.where(mask.bool(), 0, -1).to(torch.int32)
    with torch.no_grad():
        hidden = model.backbone(inputs["input_ids"], AttentionLayout(causal=not encoder, doc_ids=doc_ids),
                                token_type_ids=inputs["token_type_ids"] if encoder else None)
        if not encoder:
            inputs.pop("token_type_ids")
        theirs = hf(**inputs)
        heads = model.heads
        diffs = {}
        if architecture == "BertForPreTraining":
            diffs["mlm"] = _max_diff(heads["mlm"](hidden), theirs.prediction_logits, mask)
            diffs["nsp"] = _max_diff(heads["nsp"](hidden), theirs.seq_relationship_logits, mask)
        elif architecture.endswith("ForMaskedLM"):
            head = heads["span" if objective == "span" else "mlm"]
            diffs["mlm"] = _max_diff(head(hidden), theirs.logits, mask)  # the head at every position
        elif architecture == "BertForNextSentencePrediction":
            diffs["nsp"] = _max_diff(heads["nsp"](hidden), theirs.logits, mask)
        elif architecture == "GPT2LMHeadModel":
            head = heads["lm"] if "|" in objective else heads[objective]  # a mixture's parts share heads.lm
            diffs["lm"] = _max_diff(head(hidden), theirs.logits, mask)
        else:  # backbone only
            diffs["hidden"] = _max_diff(hidden, theirs.last_hidden_state, mask)
            if objective == "sop":  # the base model keeps the pooler SOP trained
                pooled = torch.tanh(heads["sop"].pooler(hidden[:, 0]))
                diffs["pooler"] = _max_diff(pooled, theirs.pooler_output, mask)
    print(f"{backbone}-{objective} -> {architecture}: max |diff| {diffs}")
    assert max(diffs.values()) <= TOLERANCE, diffs

    # the tokenizer: same ids (and segment ids for a pair) as the run's
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    for s in SENTENCES:
        assert hf_tok(s)["input_ids"] == run.tokenizer().encode(s).ids
    if encoder:
        enc = hf_tok(*PAIR)
        ref = run.tokenizer().encode(*PAIR)
        assert enc["input_ids"] == ref.ids and enc["token_type_ids"] == ref.type_ids
        assert hf_tok.mask_token_id == tokens.mask and hf_tok.cls_token_id == tokens.cls
    assert hf_tok.pad_token_id == tokens.pad
    assert hf_tok.model_max_length == model.backbone.spec.max_positions


def test_heads_left_out_are_reported(make_run, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", str(make_run("mlm+sop", "bert")), "--to", "hf",
                                      str(tmp_path / "hf")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "BertForMaskedLM" in result.output
    assert "note: head sop (pooler and classifier) is not exported: BertForMaskedLM has neither" in \
        " ".join(result.output.split())
    provenance = json.loads((tmp_path / "hf" / "zoo_export.json").read_text())
    assert provenance["heads"]["mlm"].startswith("cls.predictions") and provenance["step"] == 2
    assert provenance["checkpoint_sha256"] == open_run(make_run("mlm+sop", "bert")).checkpoint_id()


def test_bert_directory_also_loads_as_bare_model(make_run, tmp_path: Path) -> None:
    """AutoModel on a BertForPreTraining export is BertModel with the NSP-trained pooler."""
    import transformers

    run = open_run(make_run("mlm+nsp", "bert"))
    export_hf(run, tmp_path / "hf")
    bare = transformers.AutoModel.from_pretrained(str(tmp_path / "hf")).eval()
    head = run.load_model().heads["nsp"]
    assert torch.equal(bare.pooler.dense.weight, head.pooler.weight)


def test_refuses_a_non_empty_directory_and_forces_only_over_an_export(make_run, tmp_path: Path) -> None:
    run = str(make_run("clm", "gpt"))
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (out / "vocab.txt").write_text("[PAD]\n")
    runner = CliRunner()
    for extra in ([], ["--force"]):  # files that are not an export are never replaced
        refused = runner.invoke(cli, ["export", run, "--to", "hf", str(out), *extra])
        assert refused.exit_code == 2 and "is not empty and not a zoo export (it holds mine.txt, vocab.txt)" in \
            " ".join(refused.output.split())
        assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "vocab.txt"]
    fresh = tmp_path / "hf2"
    assert runner.invoke(cli, ["export", run, "--to", "hf", str(fresh)]).exit_code == 0
    again = runner.invoke(cli, ["export", run, "--to", "hf", str(fresh)])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(cli, ["export", run, "--to", "hf", str(fresh), "--force"])
    assert forced.exit_code == 0, forced.output
    assert "replaced a Hugging Face model (gpt2) exported by zoo export" in " ".join(forced.output.split())
    inside = runner.invoke(cli, ["export", run, "--to", "hf", run, "--force"])
    assert inside.exit_code == 2 and "run directory" in inside.output


def test_refuses_a_damaged_checkpoint_with_the_manifest_message(make_run, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(make_run("mlm", "bert"), run)
    (_, step_dir), = ckpt.steps(run)
    weights = step_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["export", str(run), "--to", "hf", str(tmp_path / "hf")], terminal_width=300)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "cannot export step 2" in message and "model.safetensors sha256" in message
    assert "does not match manifest" in message
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(("objective", "backbone"), [("mlm+nsp", "bert"), ("clm", "gpt")])
def test_zoo_bench_reads_the_exported_directory(make_run, tmp_path: Path, objective: str, backbone: str) -> None:
    from zoo.benchmarks.source import open_source

    run = open_run(make_run(objective, backbone))
    export_hf(run, tmp_path / "hf")
    source = open_source(tmp_path / "hf")
    assert source.info["format"] == "huggingface" and source.backbone_name == backbone
    assert source.special == run.special_tokens()
    exported, trained = source.backbone().state_dict(), run.load_backbone().state_dict()
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in trained)
    with pytest.raises(ConfigError, match="--step 2: .* exported Hugging Face directory"):
        open_source(tmp_path / "hf", step=2)


def test_export_and_bench_know_the_attention_a_mixture_trained_with(make_run, tmp_path: Path) -> None:
    from zoo.benchmarks.finetune import TaskHead, TaskModel
    from zoo.benchmarks.recipe import Recipe
    from zoo.benchmarks.source import open_source

    run_dir = make_run("mntp:15|clm:1", "gpt")
    code = CliRunner().invoke(cli, ["export", str(run_dir), str(tmp_path / "hf")])
    assert code.exit_code == 0, code.output
    assert "mntp bidirectional, clm causal" in " ".join(code.output.split())
    note = json.loads((tmp_path / "hf" / "zoo_export.json").read_text())["attention"]
    assert note == {"trained": {"mntp": "bidirectional", "clm": "causal"}, "architecture": "causal",
                    "fine_tuning": "bidirectional"}
    assert "GPT2LMHeadModel always attends causally" in " ".join(code.output.split())
    # zoo bench: GPT-BERT fine-tunes bidirectionally, its from-scratch baseline too; --attention overrides
    source = open_source(run_dir)
    assert source.attention("auto", "decoder") == "bidirectional"
    assert source.scratch().attention("auto", "decoder") == "bidirectional"
    assert source.attention("causal", "decoder") == "causal"
    backbone = source.backbone()
    head = TaskHead(backbone.spec.hidden_size, 2, "last", 0.0, 0.02)
    assert not TaskModel(backbone, head, "bidirectional").causal and TaskModel(backbone, head, "auto").causal
    assert Recipe(attention="causal").hash() != Recipe().hash() == Recipe(attention="auto").hash()
    with pytest.raises(ConfigError, match="invalid attention = 'sideways' \\(one of auto, bidirectional, causal\\)"):
        Recipe(attention="sideways")


def test_the_export_record_says_biases_are_zero_filled(make_run, tmp_path: Path) -> None:
    """The cpu-hour recipe's models (no biases) export; zoo_export.json and the model card say how."""
    result = CliRunner().invoke(cli, ["export", str(make_run("clm", "gpt", bias=False)), "--to", "hf",
                                      str(tmp_path / "hf")], terminal_width=300)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "hf" / "zoo_export.json").read_text())
    assert record["zero_filled_biases"] is True
    assert any("zero biases" in n for n in record["notes"])
    assert "zero biases" in (tmp_path / "hf" / "README.md").read_text()
    state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    biases = [k for k in state if k.endswith(".bias")]
    assert biases and all(not state[k].any() for k in biases)
    export_hf(make_run("clm", "gpt"), tmp_path / "biased")
    assert json.loads((tmp_path / "biased" / "zoo_export.json").read_text())["zero_filled_biases"] is False


def test_pre_ln_bert_positions_start_after_the_padding_id(make_run, tmp_path: Path) -> None:
    """RoBERTa counts positions from pad_token_id + 1: the table is shifted so row pad + 1 + i is ours i."""
    run = open_run(make_run("mlm", "bert", norm_position="pre", bias=False))
    result = export_hf(run, tmp_path / "hf")
    pad = run.special_tokens().pad
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    ours = run.load_backbone().pos_emb.weight
    assert config["model_type"] == "roberta-prelayernorm" and config["pad_token_id"] == pad
    assert config["max_position_embeddings"] == ours.shape[0] + pad + 1
    table = load_file(str(tmp_path / "hf" / "model.safetensors"))["roberta_prelayernorm.embeddings.position_embeddings.weight"]
    assert torch.equal(table[pad + 1:], ours) and not table[:pad + 1].any()
    assert any("pad_token_id + 1" in n for n in result.notes)
    assert result.heads["mlm"].startswith("lm_head")


@pytest.mark.parametrize(("objective", "backbone", "options"), [
    ("clm", "gpt", {"bias": False}), ("mlm", "bert", {"norm_position": "pre", "bias": False}),
])
def test_an_export_of_a_recipe_model_reads_back(make_run, tmp_path: Path, objective: str, backbone: str,
                                                options: dict) -> None:
    """zoo bench / --init read the export back: the same function (zero biases as biases; the pre-LN
    layout and RoBERTa's position rows undone)."""
    from zoo.benchmarks.source import open_source

    run = open_run(make_run(objective, backbone, **options))
    export_hf(run, tmp_path / "hf")
    source = open_source(tmp_path / "hf")
    assert source.backbone_name == backbone
    exported, trained = source.backbone().eval(), run.load_backbone().eval()
    assert exported.config.norm_position == options.get("norm_position", "post") if backbone == "bert" else True
    ids = torch.randint(10, 300, (2, 12))
    layout = AttentionLayout(causal=backbone == "gpt", doc_ids=torch.zeros_like(ids, dtype=torch.int32))
    with torch.no_grad():
        assert torch.allclose(exported(ids, layout), trained(ids, layout), atol=1e-5, rtol=0)


def test_init_from_a_roberta_prelayernorm_export(make_run, corpus: Path, tmp_path: Path) -> None:
    """--init accepts the pre-LN export and continues it as a pre-LN bert with its masked-LM head."""
    export_hf(make_run("mlm", "bert", norm_position="pre", bias=False), tmp_path / "hf")
    out = tmp_path / "continued"
    train(resolve({"objective": "mlm", "init": {"source": str(tmp_path / "hf")}, "out": str(out),
                   "data": {"source": str(corpus), "doc_boundary": "blank-line"},
                   "optim": {"lr": 1e-4, "warmup": 0.0},
                   "train": {"budget": "1steps", "seq_len": 32, "batch_size": 4, "eval_every": 0,
                             "eval_batches": 1, "prefetch": False}}))
    info = json.loads((out / "run.json").read_text())
    assert info["init"]["architecture"] == "RobertaPreLayerNormForMaskedLM"
    assert info["init"]["heads"]["mlm"] == "lm_head" and info["init"]["unused"] == []
    assert json.loads((out / "config.json").read_text())["model"]["norm_position"] == "pre"


def test_minimal_pairs_score_a_pre_ln_export_as_the_run(make_run, tmp_path: Path) -> None:
    """zoo bench scores the RobertaPreLayerNormForMaskedLM export with its lm_head: as the run itself."""
    from zoo.benchmarks.lm_scoring import score_sentences, scorers_for
    from zoo.benchmarks.source import open_source
    from zoo.benchmarks.zeroshot import open_scoring_model

    run_dir = make_run("mlm", "bert", norm_position="pre", bias=False)
    export_hf(run_dir, tmp_path / "hf")
    scores = []
    for path in (run_dir, tmp_path / "hf"):
        src = open_source(path)
        sm = open_scoring_model(src)
        (scorer,) = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads, "word-l2r")
        scores.append(score_sentences(scorer, sm.backbone, sm.heads, src.tokenizer, src.special, SENTENCES,
                                      batch_tokens=64))
    ours, exported = scores
    for key in ours:
        assert np.allclose(ours[key], exported[key], atol=1e-5, rtol=0), key


def test_t5_span_corruption_exports_as_t5_for_conditional_generation(make_run, tmp_path: Path) -> None:
    """A t5 run of T5 span corruption loads with AutoModelForSeq2SeqLM and computes the run's logits on
    padded encoder and decoder inputs (decoder: the text shifted right behind the pad token)."""
    import transformers

    run_dir = make_run("span-lm", "t5")
    out = tmp_path / "hf"
    result = export_hf(run_dir, out)
    assert result.architecture == "T5ForConditionalGeneration" and result.max_abs_diff <= TOLERANCE
    run = open_run(run_dir)
    model, tokens = run.load_model().eval(), run.special_tokens()
    config = json.loads((out / "config.json").read_text())
    assert config["decoder_start_token_id"] == config["pad_token_id"] == tokens.pad
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(out)).eval()
    assert type(hf).__name__ == "T5ForConditionalGeneration"
    inputs = _encode(run.tokenizer(), pair=False)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    dec = torch.cat([torch.full_like(ids[:, :1], tokens.pad), ids[:, :-1]], 1)
    dec_mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, :-1]], 1)
    docs = torch.where(mask.bool(), 0, -1).to(torch.int32)
    dec_docs = torch.where(dec_mask.bool(), 0, -1).to(torch.int32)
    with torch.no_grad():
        hidden = model.backbone(ids, AttentionLayout(doc_ids=docs), decoder_input_ids=dec,
                                decoder_layout=AttentionLayout(causal=True, doc_ids=dec_docs))
        ours = model.heads["span-lm"](hidden)
        theirs = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask).logits
    assert _max_diff(ours, theirs, dec_mask) <= TOLERANCE


def test_untied_t5_export_is_refused_not_written(make_run, tmp_path: Path) -> None:
    """transformers ties every T5's lm_head to the shared embedding, so a run with its own output
    projection (T5 v1.1) has no faithful T5ForConditionalGeneration: the self-check refuses it."""
    from zoo.errors import PluginError

    run_dir = make_run("span-lm", "t5", tie_word_embeddings=False)
    with pytest.raises(PluginError, match="does not reproduce"):
        export_hf(run_dir, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(("objective", "scorer"), [("span-lm", "seq2seq-sentinel"), ("clm", "seq2seq"),
                                                   ("ul2", "seq2seq[S]")])
def test_zoo_bench_scores_a_t5_export_as_transformers_and_the_run(make_run, tmp_path: Path, objective: str,
                                                                  scorer: str) -> None:
    """``zoo bench EXPORT --suite blimp`` reads a T5ForConditionalGeneration export with the scorer of the
    objective its zoo_export.json records: its scores are the log-likelihoods transformers computes from the
    export directory alone, and the run's own scores."""
    import transformers
    from tokenizers import Tokenizer

    from zoo.benchmarks.lm_scoring import score_sentences, scorers_for
    from zoo.benchmarks.source import open_source
    from zoo.benchmarks.zeroshot import open_scoring_model

    from ..unit.test_minimal_pairs_data import write_blimp

    pairs = [("The cats sleep soundly tonight.", "The cats sleeps."), ("Dogs bark.", "Dogs barks at them loudly.")]
    sentences = [s for p in pairs for s in p]
    run_dir, out = make_run(objective, "t5"), tmp_path / "hf"
    export_hf(run_dir, out)
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", pairs)
    result = CliRunner().invoke(cli, ["bench", str(out), "--suite", "blimp", "--data-dir", str(data), "--device",
                                      "cpu", "--no-cache"])
    assert result.exit_code == 0, result.output
    (saved,) = json.loads((out / "bench.json").read_text())["suites"]["blimp"]["models"]
    assert saved["scorer"] == scorer and saved["objective"] == objective

    scores = []
    for path in (run_dir, out):
        src = open_source(path)
        sm = open_scoring_model(src)
        (chosen,) = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads)
        assert chosen.name == scorer
        scores.append(score_sentences(chosen, sm.backbone, sm.heads, src.tokenizer, src.special, sentences)[scorer])
    ours, exported = scores
    # transformers alone: the export's model, config and tokenizer.json; decoder_start_token_id shifts labels
    hf = transformers.T5ForConditionalGeneration.from_pretrained(str(out)).eval()
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    sentinel = [tok.token_to_id("<extra_id_0>")] if "sentinel" in scorer else []
    lead = [tok.token_to_id("[S]")] if scorer.endswith("[S]") else []
    reference = []
    for text in sentences:
        labels = torch.tensor([[*sentinel, *tok.encode(text, add_special_tokens=False).ids]])
        with torch.no_grad():
            logits = hf(input_ids=torch.tensor([[*lead, *sentinel, hf.config.eos_token_id]]), labels=labels).logits
        logp = logits.log_softmax(-1)[0, len(sentinel):].gather(1, labels[0, len(sentinel):, None])
        reference.append(logp.sum().item())
    np.testing.assert_allclose(exported, reference, atol=1e-4, rtol=0)
    np.testing.assert_allclose(exported, ours, atol=1e-4, rtol=0)
    expected = "".join("1" if reference[2 * i] > reference[2 * i + 1] else "0" for i in range(len(pairs)))
    assert saved["correct"][scorer]["toy"] == expected
