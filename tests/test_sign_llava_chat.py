"""Sign_LLaVA on upstream's sequence: the chat layout, sample.txt, and the upstream projector export.

The LM here is a local Llama-3-style directory built offline in the test: a
byte-level BPE tokenizer with Llama-3's pre-tokenizer regex, special tokens and
Llama-3-Instruct's chat template (written out below, independently of the code
under test), and a tiny random Llama saved with save_pretrained.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from schemas.config_sign_llava import UPSTREAM_CONTEXT_INSTRUCTION, UPSTREAM_INSTRUCTION, UPSTREAM_SYSTEM_PROMPT
from sldata.features import FeatureDataset
from sldata.mock import write_mock
from sltrain.config import build_config
from sltrain.data.features import context_of
from sltrain.loop import train
from sltrain.models.llm import freeze, load_local_llm
from sltrain.models.sign_llava import IGNORE, ChatSequenceBuilder, SequenceBuilder, SignLlava

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
REPS = ["dino", "pose", "sign2vec"]


def make_llama3_dir(path: Path, texts: list[str]) -> Path:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    fast.chat_template = LLAMA3_TEMPLATE
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("chat")
    data = root / "mock_data_multi"
    write_mock(data, layout="v2", videos=2, clips=6, splits=["train", "dev"], reps=REPS, seed=2,
               shard_size=1, min_frames=4, max_frames=12)
    ann = FeatureDataset(data).split("train").annotation
    texts = [c["translation"] for v in ann.values() for k, c in v.items() if k != "clip_order"]
    texts += [UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION, UPSTREAM_CONTEXT_INSTRUCTION, "system user assistant"]
    lm = make_llama3_dir(root / "llama3", texts)
    _, tok = load_local_llm(lm, torch.float32)
    return root, data, lm, tok


SAMPLE = {"video": "vidA", "clip": "3", "target": "My sister saw the movie today.",
          "context": ["We like coffee.", "The teacher will visit again."],
          "features": {"pose": torch.randn(3, 5), "dino": torch.randn(2, 7)}}


def _walk(batch: dict, reps: list[str], row: int = 0) -> list:
    """The row as items: token id, 'S'/'E' for a marker, rep name for a visual token."""
    what = {}
    for r in reps:
        for p in batch["positions"][r][row].tolist():
            if p >= 0:
                what[p] = r
    for p, k in zip(batch["markers"][row].tolist(), batch["marker_kind"][row].tolist()):
        if p >= 0:
            what[p] = "E" if k else "S"
    n = int(batch["attention_mask"][row].sum())
    return [what.get(i, batch["input_ids"][row, i].item()) for i in range(n)]


def test_golden_chat_sequence(env) -> None:
    """Upstream's layout token by token: template turns, one marker pair per rep in data.reps order,
    the context inside the instruction after the video, and only target + <|eot_id|> supervised."""
    *_, tok = env
    reps = ["pose", "dino"]  # data.reps order, not upstream's fixed one
    builder = ChatSequenceBuilder(tok, reps, 1024, UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION,
                                  UPSTREAM_CONTEXT_INSTRUCTION)
    batch = builder([SAMPLE])

    def enc(s: str) -> list[int]:
        return tok(s, add_special_tokens=False)["input_ids"]

    bot, sh, eh, eot = (tok.convert_tokens_to_ids(t) for t in
                        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"))
    pre, rest = UPSTREAM_SYSTEM_PROMPT.split("<video_start>")
    mid, post = rest.split("<video_end>")
    instruction = ("Here are some preceding sentences as context: 'We like coffee. The teacher will visit again.'. "
                   "Translate the next sentence given by the American Sign Language video into English.")
    answer = enc(SAMPLE["target"]) + [eot]
    expected = ([bot, sh] + enc("system") + [eh] + enc("\n\n" + pre) + ["S"] + enc(mid) + ["E"] + enc(post)
                + [eot, sh] + enc("user") + [eh] + enc("\n\n")
                + ["S"] + ["pose"] * 3 + ["E", "S"] + ["dino"] * 2 + ["E"] + enc("\n" + instruction)
                + [eot, sh] + enc("assistant") + [eh] + enc("\n\n") + answer)
    assert _walk(batch, reps) == expected
    labels = batch["labels"][0].tolist()
    assert labels == [IGNORE] * (len(expected) - len(answer)) + answer
    assert batch["input_ids"][0].tolist().count(bot) == 1  # one <|begin_of_text|>, not two
    assert batch["stats"]["tokens/target"] == len(answer)
    # without context: upstream's plain instruction
    plain = _walk(builder([{**SAMPLE, "context": []}]), reps)
    assert tok.decode([t for t in plain if isinstance(t, int)]).count(UPSTREAM_INSTRUCTION + "<|eot_id|>") == 1
    # generation: the prompt ends with the assistant header, nothing supervised; stop at <|eot_id|>
    gen = ChatSequenceBuilder(tok, reps, 1024, UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION,
                              UPSTREAM_CONTEXT_INSTRUCTION, generate=True)
    g = gen([SAMPLE])
    assert _walk(g, reps) == expected[:-len(answer)] and (g["labels"] == IGNORE).all()
    assert eot in gen.stop_token_ids()


def test_golden_compact_sequence_unchanged(env) -> None:
    *_, tok = env
    reps = ["pose", "dino"]
    batch = SequenceBuilder(tok, reps, 1024, "Translate the video.")([SAMPLE])

    def enc(s: str) -> list[int]:
        return tok(s, add_special_tokens=False)["input_ids"]

    target = enc(" " + SAMPLE["target"]) + [tok.eos_token_id]
    expected = ([tok.bos_token_id] + enc("Translate the video.") + enc("\nPrevious sentences:")
                + enc(" We like coffee.") + enc(" The teacher will visit again.")
                + ["S"] + ["pose"] * 3 + ["dino"] * 2 + ["E"] + enc("\nTranslation:") + target)
    assert _walk(batch, reps) == expected
    assert batch["labels"][0].tolist() == [IGNORE] * (len(expected) - len(target)) + target


def test_length_control_counts_the_template_and_never_cuts_the_target(env) -> None:
    *_, tok = env
    args = (UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION, UPSTREAM_CONTEXT_INSTRUCTION)
    sample = {**SAMPLE, "features": {"pose": torch.randn(40, 5), "dino": torch.randn(20, 7)}}
    full = len(_walk(ChatSequenceBuilder(tok, ["pose", "dino"], 4096, *args)([sample]), ["pose", "dino"]))
    no_ctx = len(_walk(ChatSequenceBuilder(tok, ["pose", "dino"], 4096, *args)([{**sample, "context": []}]),
                       ["pose", "dino"]))
    tight = ChatSequenceBuilder(tok, ["pose", "dino"], no_ctx - 30, *args)
    batch = tight([sample])
    st = batch["stats"]
    assert full > no_ctx and batch["input_ids"].shape[1] == no_ctx - 30  # the budget, template tokens included
    assert st["shorten/context_sentences"] == 2 and st["shorten/visual_tokens"] == 30
    answer = tok(sample["target"], add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|eot_id|>")]
    assert batch["labels"][0][batch["labels"][0] != IGNORE].tolist() == answer
    assert tight.fixed_length(sample["target"]) == no_ctx - 60
    assert tight.overlong("word " * 2000) and not tight.overlong(sample["target"])


def test_context_prelude_follows_upstream() -> None:
    def upstream(clip_id: int, window: int, prelude: int) -> list[int]:  # SignContextDataset.__getitem__
        if clip_id >= window + prelude:
            return list(range(prelude)) + list(range(clip_id - window, clip_id))
        return list(range(clip_id))

    history = [f"s{i}" for i in range(9)]
    for window in range(4):
        for prelude in range(3):
            for clip_id in range(9):
                want = tuple(history[i] for i in upstream(clip_id, window, prelude))
                assert context_of(history[:clip_id], window, prelude) == want


def _raw(data: Path, out: Path, llm: str, **data_kw) -> dict:
    return {"recipe": "sign_llava",
            "data": {"path": str(data), "reps": REPS, "context_clips": 1, "context_prelude": 1, "max_length": 400,
                     **data_kw},
            "model": {"llm": llm, "projector": "mlp2x_gelu", "max_new_tokens": 4},
            "optim": {"lr": 2e-3, "schedule": "constant", "label_smoothing": 0.1},
            "trainer": {"out_dir": str(out), "max_steps": 2, "batch_size": 4, "num_workers": 0, "log_every": 1,
                        "save_every": 2, "eval_every": 0, "tensorboard": False}}


SAMPLE_RE = re.compile(r"^# video (\S+) clip (\S+): (\d+) positions \((\d+) visual, (\d+) supervised\), layout (\w+)$")


def _parse_sample(text: str) -> dict:
    header, legend, body = text.split("\n", 2)
    m = SAMPLE_RE.match(header)
    assert m and legend.startswith("# <REP×N>")
    spans = re.findall(r"<video_start><(\w+)×(\d+)><video_end>", body)
    sup = re.findall(r"⟦(.*?)⟧", body, flags=re.S)
    return {"video": m[1], "clip": m[2], "positions": int(m[3]), "visual": int(m[4]), "supervised": int(m[5]),
            "layout": m[6], "spans": [(r, int(n)) for r, n in spans], "supervised_text": sup, "body": body}


@pytest.fixture(scope="module")
def chat_run(env):
    root, data, lm, _ = env
    out = root / "run"
    return out, train(build_config(_raw(data, out, str(lm))))


def test_llama3_directory_trains_on_upstream_layout_writes_sample_and_loadable_export(env, chat_run) -> None:
    root, data, lm, tok = env
    out, result = chat_run
    assert result.steps == 2 and result.data["layout"] == "chat"

    s = _parse_sample((out / "sample.txt").read_text(encoding="utf-8"))
    view = FeatureDataset(data).split("train")
    video = view.videos[0]
    clip = view.clips(video)[0]
    assert (s["video"], s["clip"], s["layout"]) == (video, clip, "chat")
    frames = [(r, view.features(video, clip, r).shape[0]) for r in REPS]
    assert s["spans"] == frames and s["visual"] == sum(n for _, n in frames)
    translation = view.annotation[video][clip]["translation"]
    assert s["supervised_text"] == [translation + "<|eot_id|>"]
    assert s["body"].count("<|begin_of_text|>") == 1
    assert f"<|start_header_id|>assistant<|end_header_id|>\n\n⟦{translation}" in s["body"]
    assert "<video_start> and <video_end>.<|eot_id|>" in s["body"]  # upstream's system prompt, markers included
    assert s["supervised"] == len(tok(translation, add_special_tokens=False)["input_ids"]) + 1

    # the export loads the way upstream's next stage loads it (llava/model/llava_arch.py @0a32174)
    ours = torch.load(out / "checkpoints" / "step_00000002.pt", map_location="cpu", weights_only=True)["model"]
    weights = torch.load(out / "checkpoints" / "step_00000002.upstream.pt", map_location="cpu")
    dims = {"dino": 384, "pose": 32, "sign2vec": 768}
    hidden = 32

    def build_vision_projector(kind: str, mm_hidden: int, hidden_size: int) -> nn.Module:  # upstream's builder
        depth = int(re.match(r"^mlp(\d+)x_gelu$", kind).group(1))
        mods: list[nn.Module] = [nn.Linear(mm_hidden, hidden_size)]
        for _ in range(1, depth):
            mods += [nn.GELU(), nn.Linear(hidden_size, hidden_size)]
        return nn.Sequential(*mods)

    def get_w(w: dict, keyword: str) -> dict:  # upstream's initialize_projectors
        return {k.split(keyword + ".")[1]: v for k, v in w.items() if keyword in k}

    x = {r: torch.randn(5, d) for r, d in dims.items()}
    for rep, d in dims.items():
        proj = build_vision_projector("mlp2x_gelu", d, hidden)
        proj.load_state_dict(get_w(weights["module"], f"{rep}_projector"))  # strict: every key, no extra
        mine = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        mine.load_state_dict({k[len(f"projectors.{rep}."):]: v for k, v in ours.items()
                              if k.startswith(f"projectors.{rep}.")})
        assert torch.equal(proj(x[rep]), mine(x[rep]))
    # initialize_vision_tokenizer: add the two tokens, resize, copy the (2, hidden) rows
    from transformers import AutoModelForCausalLM, AutoTokenizer

    utok = AutoTokenizer.from_pretrained(lm, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(lm, local_files_only=True)
    assert utok.add_tokens(["<video_start>", "<video_end>"], special_tokens=True) == 2
    model.resize_token_embeddings(len(utok))
    emb = model.get_input_embeddings().weight.data
    src = weights["module"]["model.embed_tokens.weight"]
    assert src.shape == (2, hidden)
    emb[-2:] = src
    assert torch.equal(emb[utok.convert_tokens_to_ids("<video_start>")], ours["video_markers"][0])
    assert torch.equal(emb[utok.convert_tokens_to_ids("<video_end>")], ours["video_markers"][1])
    assert weights["sldata"]["projectors"]["pose"] == {"dim": 32, "projector_type": "mlp2x_gelu"}


def test_compact_layout_stays_an_option(env) -> None:
    root, data, lm, _ = env
    out = root / "compact"
    result = train(build_config({**_raw(data, out, str(lm), layout="compact"),
                                 "trainer": {**_raw(data, out, str(lm))["trainer"], "max_steps": 1}}))
    assert result.data["layout"] == "compact"
    s = _parse_sample((out / "sample.txt").read_text(encoding="utf-8"))
    assert s["layout"] == "compact" and "<|start_header_id|>" not in s["body"]
    assert re.search(r"<video_start><dino×\d+><pose×\d+><sign2vec×\d+><video_end>\nTranslation:⟦ ", s["body"])


def test_label_smoothing_applies_to_training_loss_only(env) -> None:
    _, _, lm, tok = env
    model_lm, _ = load_local_llm(lm, torch.float32)
    torch.manual_seed(0)
    model = SignLlava(freeze(model_lm), {"pose": 5, "dino": 7}, label_smoothing=0.1)
    batch = ChatSequenceBuilder(tok, ["pose", "dino"], 1024, UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION,
                                UPSTREAM_CONTEXT_INSTRUCTION)([SAMPLE])
    model.eval()
    plain, _ = model(batch)
    reference = model.lm(inputs_embeds=model.embed(batch), attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
    assert torch.allclose(plain, reference, atol=1e-5)
    model.train()
    smoothed, _ = model(batch)
    logits = model.lm(inputs_embeds=model.embed(batch), attention_mask=batch["attention_mask"]).logits[0, :-1]
    labels = batch["labels"][0, 1:]
    want = nn.functional.cross_entropy(logits[labels != IGNORE], labels[labels != IGNORE], label_smoothing=0.1)
    assert torch.allclose(smoothed, want, atol=1e-5) and not torch.allclose(smoothed, plain)


def test_evaluate_refuses_a_checkpoint_of_the_other_layout_and_builders_pickle(env, chat_run) -> None:
    import pickle

    from sldata.errors import UserError
    from sltrain import evaluate

    root, data, lm, tok = env
    out, _ = chat_run
    with pytest.raises(UserError, match="trained on the chat layout"):
        evaluate(build_config(_raw(data, out, str(lm), layout="compact")), out / "checkpoints" / "step_00000002.pt",
                 "dev", root / "eval")
    builder = ChatSequenceBuilder(tok, ["pose", "dino"], 1024, UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION,
                                  UPSTREAM_CONTEXT_INSTRUCTION)
    clone = pickle.loads(pickle.dumps(builder))  # DataLoader workers get a copy
    assert torch.equal(clone([SAMPLE])["input_ids"], builder([SAMPLE])["input_ids"])
