"""DSETrainerCallback on a real `transformers.Trainer`: tiny BERT built from its config (no
download), generated token data padded by `DataCollatorWithPadding`, CPU only.

Each Trainer run takes a few seconds, so the runs are shared through module fixtures where
several checks read the same run.
"""

from __future__ import annotations

import glob
import json
import math
import os
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from dse_callback import DSETrainerCallback  # noqa: E402
from dse_callback.integrations import huggingface as hf_module  # noqa: E402

WORDS = 20  # words per class; class c draws words w{20c}..w{20c+19}


def make_tokenizer(padding_side: str = "right"):
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(2 * WORDS)}}
    tokenizer = tokenizers.Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", padding_side=padding_side
    )


class TokenData(torch.utils.data.Dataset):
    """Sentences of 3 to 9 words, the words telling the class; unpadded token lists."""

    def __init__(self, n: int, seed: int, tokenizer=None):
        tokenizer = tokenizer or make_tokenizer()
        generator = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            label = i % 2
            length = int(torch.randint(3, 10, (1,), generator=generator))
            words = [f"w{int(w) + WORDS * label}" for w in torch.randint(0, WORDS, (length,), generator=generator)]
            self.items.append({**tokenizer(" ".join(words)), "labels": label})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def tiny_bert():
    config = transformers.BertConfig(
        vocab_size=2 * WORDS + 2,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def tiny_gpt2():
    config = transformers.GPT2Config(
        vocab_size=2 * WORDS + 2,
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        num_labels=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    return transformers.GPT2ForSequenceClassification(config)


def make_trainer(
    tmp_path, epochs=2, callback=None, report_to="none", eval_dataset=None, model=None, collator=None, **kwargs
):
    kwargs.setdefault("logging_steps", 2)
    kwargs.setdefault("save_strategy", "no")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=epochs,
        use_cpu=True,
        seed=0,
        data_seed=0,
        report_to=report_to,
        disable_tqdm=True,
        **kwargs,
    )
    trainer = transformers.Trainer(
        model=model or tiny_bert(),
        args=args,
        train_dataset=TokenData(32, seed=0),
        eval_dataset=TokenData(24, seed=1) if eval_dataset is None else eval_dataset,
        data_collator=collator or transformers.DataCollatorWithPadding(make_tokenizer()),
    )
    if callback is not None:
        callback.attach(trainer)
    return trainer


def dse_callback(**kwargs):
    kwargs.setdefault("sigma", 1.0)
    return DSETrainerCallback(**kwargs)


def entries(trainer, key):
    return [entry for entry in trainer.state.log_history if key in entry]


def losses(trainer):
    return [(entry["step"], entry["loss"]) for entry in entries(trainer, "loss")]


# ---------------------------------------------------------------------- the package


def test_importing_the_package_does_not_load_transformers():
    code = "import sys, dse_callback; assert 'transformers' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_without_transformers_constructing_it_names_the_extra(monkeypatch):
    import importlib.util

    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    spec = importlib.util.spec_from_file_location("dse_callback.integrations._hf_without", hf_module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the module itself imports
    with pytest.raises(ImportError, match=r'pip install "dse_callback\[hf\]"'):
        module.DSETrainerCallback()


def test_signature_lists_every_setting_and_its_own_options():
    import dataclasses
    import inspect

    from dse_callback.measure.settings import MeasureSettings, MonitorSettings, ProbeSettings

    parameters = inspect.signature(DSETrainerCallback).parameters
    for cls in (ProbeSettings, MeasureSettings, MonitorSettings):
        assert {option.name for option in dataclasses.fields(cls)} <= set(parameters)
    assert parameters["every_n_steps"].default is None
    assert parameters["metrics"].default is None  # chosen from the probe's labels
    assert "every_n_steps" in DSETrainerCallback.__doc__ and "probe_size" in DSETrainerCallback.__doc__


def test_options_are_checked_when_the_callback_is_built():
    with pytest.raises(ValueError, match="every_n_steps"):
        DSETrainerCallback(every_n_steps=0)
    with pytest.raises(ValueError, match="not both"):
        DSETrainerCallback(every_n_steps=2, every_n_epochs=2)
    with pytest.raises(TypeError, match="unknown option"):
        DSETrainerCallback(every_n_step=2)
    with pytest.raises(ValueError, match="metrics"):
        DSETrainerCallback(metrics=("entropy",))
    with pytest.raises(ValueError, match="layer"):
        DSETrainerCallback(layer="a", layers=["b"])
    with pytest.raises(TypeError, match="transformers.Trainer"):
        DSETrainerCallback().attach(object())


# ---------------------------------------------------------------------- what is read from the Trainer


def test_the_state_survives_json_and_comes_back_as_tensors():
    import numpy as np

    from dse_callback.integrations.hf_trainer_access import json_state, saved_state

    state = {
        "history": {0: {"Z": {"dse": 1.5, "dsmi_y": float("nan"), "n": np.int64(24), "odd": object()}}},
        "probe_indices": torch.tensor([3, 1, 2]),
        "input_clusters": None,
    }
    text = json.dumps({"attributes": {"dse_state": {"key": "k", **json_state(state)}}})  # raises on a non-JSON type
    entry = json.loads(text)
    other = {"attributes": {"dse_state": {"key": "other", "history": {}}}}
    old = {"attributes": {"dse_state": {"key": "k", "history": {}}}}
    restored = saved_state({"DSETrainerCallback": [old, other, entry]}, "DSETrainerCallback", "k")
    assert restored["probe_indices"].dtype == torch.int64 and restored["probe_indices"].tolist() == [3, 1, 2]
    row = restored["history"]["0"]["Z"]
    assert row["dse"] == 1.5 and math.isnan(row["dsmi_y"]) and row["n"] == 24 and isinstance(row["odd"], str)
    assert saved_state({"DSETrainerCallback": entry}, "DSETrainerCallback", "k")["history"] == restored["history"]
    assert saved_state({}, "DSETrainerCallback", "k") is None
    assert saved_state({"DSETrainerCallback": other}, "DSETrainerCallback", "k") is None


def test_the_runtime_comes_from_the_trainers_accelerator():
    from types import SimpleNamespace

    from dse_callback.integrations.hf_trainer_access import runtime_from

    gathered = []

    def gather(tensor):  # accelerate concatenates the ranks' tensors along the first axis
        gathered.append(tuple(tensor.shape))
        return torch.cat([tensor, tensor + 1])

    def trainer(world_size, rank):
        args = SimpleNamespace(world_size=world_size, process_index=rank, device=torch.device("cpu"))
        return SimpleNamespace(
            args=args,
            accelerator=SimpleNamespace(gather=gather),
            is_world_process_zero=lambda: rank == 0,
            compute_loss_context_manager=lambda: None,
        )

    single = runtime_from(trainer(1, 0))
    assert (single.rank, single.world_size, single.is_primary, single.all_gather) == (0, 1, True, None)
    two = runtime_from(trainer(2, 1))
    assert (two.rank, two.world_size, two.is_primary) == (1, 2, False)
    assert two.all_gather(torch.zeros(3, 4)).shape == (2, 3, 4)  # the (P, M, ...) the tracker expects
    assert gathered == [(1, 3, 4)]
    assert two.forward_context is not None


def test_figures_go_to_the_writers_the_trainers_callbacks_hold():
    from types import SimpleNamespace

    from dse_callback.integrations.hf_trainer_access import figure_loggers

    board, silent, wandb, mlflow, idle, comet = (
        type("TensorBoardCallback", (), {})(),
        type("TensorBoardCallback", (), {})(),
        type("WandbCallback", (), {})(),
        type("MLflowCallback", (), {})(),
        type("MLflowCallback", (), {})(),
        type("CometCallback", (), {})(),
    )
    board.tb_writer, silent.tb_writer = "writer", None  # ranks other than 0 hold no writer
    wandb._wandb = SimpleNamespace(run="run")
    mlflow._initialized, mlflow._ml_flow = True, "mlflow"
    idle._initialized, idle._ml_flow = False, "not started"
    comet._experiment = "experiment"
    callbacks = [object(), board, silent, wandb, mlflow, idle, comet]
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=callbacks))
    assert figure_loggers(trainer) == ["writer", "run", "mlflow", "experiment"]


# ---------------------------------------------------------------------- a run, with and without


@pytest.fixture(scope="module")
def epoch_runs(tmp_path_factory):
    """Two epochs with the loss logged once per epoch (the flag `trainer.log` resets), with and
    without the callback, TensorBoard on, a checkpoint per epoch."""
    runs = {}
    for with_callback in (False, True):
        path = tmp_path_factory.mktemp("with" if with_callback else "without")
        callback = dse_callback() if with_callback else None
        trainer = make_trainer(
            path, callback=callback, report_to=["tensorboard"], logging_strategy="epoch", save_strategy="epoch"
        )
        trainer.train()
        runs[with_callback] = (trainer, callback, path)
    return runs


def test_training_is_bit_identical_with_and_without_the_callback(epoch_runs):
    (plain, _, _), (watched, _, _) = epoch_runs[False], epoch_runs[True]
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), watched.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_loss_log_is_intact(epoch_runs):
    (plain, _, _), (watched, _, _) = epoch_runs[False], epoch_runs[True]
    assert losses(plain) == losses(watched) and [step for step, _ in losses(plain)] == [4, 8]


def test_scalars_reach_log_history_at_the_baseline_and_each_epoch(epoch_runs):
    trainer, callback, _ = epoch_runs[True]
    logged = entries(trainer, "dse/Z")
    assert [entry["step"] for entry in logged] == [0, 4, 8]
    assert [entry["dse/epoch"] for entry in logged] == [0.0, 1.0, 2.0]
    for entry in logged:
        assert 0 < entry["dse/Z"] <= math.log2(24) and math.isfinite(entry["dsmi/Z_Y"])  # labels found: DSMI(Z; Y)
        assert all(isinstance(value, (int, float)) for value in entry.values())
    assert sorted(callback.history) == [0, 1, 2]
    assert callback.tracker.metrics == ("dse", "dsmi_y")


def test_scalars_and_figures_reach_tensorboard(epoch_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, path = epoch_runs[True]
    (run_dir,) = {os.path.dirname(file) for file in glob.glob(f"{path}/runs/*/events.out.tfevents.*")}
    events = EventAccumulator(run_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [event.step for event in events.Scalars("train/dse/Z")] == [0, 4, 8]  # the Trainer's train/ prefix
    assert [event.step for event in events.Scalars("train/loss")] == [4, 8]
    assert len(events.Images("dse/Z_spectrum")) == 3


def test_history_is_in_every_checkpoint_and_in_the_csv(epoch_runs):
    trainer, _, path = epoch_runs[True]
    with open(f"{path}/checkpoint-4/trainer_state.json") as stream:
        saved = json.load(stream)
    assert [entry["step"] for entry in saved["log_history"] if "dse/Z" in entry] == [0, 4]
    state = saved["stateful_callbacks"]["DSETrainerCallback"]["attributes"]["dse_state"]
    assert sorted(state["history"]) == ["0", "1"] and len(state["probe_indices"]) == 24
    with open(f"{path}/dse_history.csv") as stream:
        rows = stream.read().splitlines()
    assert rows[0].startswith("epoch,representation,layer,dse,dsmi_y") and "train_epoch" in rows[0]
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]


@pytest.mark.parametrize("restore_callbacks", [False, True])
def test_a_resumed_run_continues_its_history(epoch_runs, tmp_path, restore_callbacks):
    first, first_callback, path = epoch_runs[True]
    callback = dse_callback()
    trainer = make_trainer(tmp_path, callback=callback, restore_callback_states_from_checkpoint=restore_callbacks)
    trainer.train(resume_from_checkpoint=f"{path}/checkpoint-4")
    # With restore_callback_states_from_checkpoint the Trainer swaps in a copy of the callback;
    # the copy takes over the original's setup (the Trainer, the probe).
    (active,) = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, DSETrainerCallback)]
    assert sorted(active.history) == [0, 1, 2]
    for epoch in (0, 1):  # restored, not measured again
        assert active.history[epoch]["Z"]["dse"] == first_callback.history[epoch]["Z"]["dse"]
    assert torch.equal(active.tracker.probe_indices, first_callback.tracker.probe_indices)
    resumed = entries(trainer, "dse/Z")
    assert [entry["step"] for entry in resumed] == [0, 4, 8]  # two from the checkpoint, one new
    assert resumed[-1]["dse/Z"] == pytest.approx(entries(first, "dse/Z")[-1]["dse/Z"], abs=1e-6)


def test_scalars_and_figures_reach_wandb_offline_and_an_mlflow_file_store(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path}/mlruns")
    trainer = make_trainer(tmp_path, epochs=1, callback=dse_callback(), report_to=["wandb", "mlflow"])
    try:
        trainer.train()
    finally:
        wandb.finish()
        mlflow.end_run()
    images = glob.glob(f"{tmp_path}/wandb/offline-run-*/files/media/images/dse/Z_spectrum_*.png")
    assert len(images) == 2  # the baseline and epoch 1
    (run,) = glob.glob(f"{tmp_path}/mlruns/*/*/metrics/dse/Z")
    with open(run) as stream:
        assert [int(line.split()[2]) for line in stream] == [0, 4]  # "timestamp value step" per line
    artifacts = sorted(os.path.basename(path) for path in glob.glob(f"{tmp_path}/mlruns/*/*/artifacts/dse_figures/*"))
    assert artifacts == ["dse_Z_spectrum_step0.png", "dse_Z_spectrum_step4.png"]
    assert not glob.glob(f"{tmp_path}/dse_figures/*")  # the runs took them: no PNG fallback


# ---------------------------------------------------------------------- every n steps


def test_every_n_steps_keeps_the_step_loss_log(tmp_path):
    plain = make_trainer(tmp_path / "plain", epochs=1)
    plain.train()
    callback = dse_callback(every_n_steps=2, metrics=("dse",), record_metrics=("loss",))
    watched = make_trainer(tmp_path / "watched", epochs=1, callback=callback)
    watched.train()
    # record_metrics: the latest logged loss joins each row (the step's own loss is logged after the probe)
    assert [callback.history[step]["Z"]["loss"] for step in (0, 2, 4)] == ["", "", losses(watched)[0][1]]
    assert [entry["step"] for entry in entries(watched, "dse/Z")] == [0, 2, 4]
    assert sorted(callback.history) == [0, 2, 4]  # indexed by the optimizer step
    assert [entry["dse/epoch"] for entry in entries(watched, "dse/Z")] == [0.0, 0.5, 1.0]
    assert losses(watched) == losses(plain) and [step for step, _ in losses(plain)] == [2, 4]
    # report_to="none": no logger takes figures, so they are PNG files in output_dir
    pngs = sorted(os.path.basename(path) for path in glob.glob(f"{tmp_path}/watched/dse_figures/*.png"))
    assert pngs == [f"dse_Z_spectrum_step{step}.png" for step in (0, 2, 4)]


def test_profile_images_reach_the_figures_under_the_hugging_face_trainer(tmp_path):
    callback = dse_callback(every_n_steps=2, metrics=("dse",), profile=True)
    make_trainer(tmp_path, epochs=1, callback=callback).train()
    assert sorted(callback.tracker.profiles) == [0, 2, 4]
    pngs = sorted(os.path.basename(path) for path in glob.glob(f"{tmp_path}/dse_figures/dse_Z_profile_*.png"))
    assert pngs == [f"dse_Z_profile_step{step}.png" for step in (0, 2, 4)]


def test_asynchronous_metrics_reach_the_log_by_the_end_of_training(tmp_path):
    callback = dse_callback(async_metrics=True)
    trainer = make_trainer(tmp_path, epochs=2, callback=callback)
    trainer.train()
    logged = entries(trainer, "dse/Z")
    assert sorted(entry["dse/epoch"] for entry in logged) == [0.0, 1.0, 2.0]  # each probe's own epoch
    assert all(math.isfinite(entry["dse/Z"]) for entry in logged)
    assert all(math.isfinite(callback.history[epoch]["Z"]["dse"]) for epoch in (0, 1, 2))


def test_without_the_should_log_guard_the_loss_log_is_lost(tmp_path, monkeypatch):
    """The broken variant: logging without restoring `control.should_log` swallows the loss."""

    def careless_log(self, control, values, train_epoch):
        self.trainer.log(dict(values))

    monkeypatch.setattr(DSETrainerCallback, "_log", careless_log)
    callback = dse_callback(every_n_steps=2, metrics=("dse",))
    trainer = make_trainer(tmp_path, epochs=1, callback=callback, max_steps=2)
    trainer.train()
    assert losses(trainer) == [] and sorted(callback.history) == [0, 2]  # a loss was due at step 2


# ---------------------------------------------------------------------- sequence activations


def test_a_gpt2_sequence_layer_is_pooled_with_the_mask_and_training_stays_bit_identical(tmp_path):
    """GPT-2's default layer (the input of `score`) is (B, T, H): mean-pooled over the real tokens."""
    plain = make_trainer(tmp_path / "plain", epochs=1, model=tiny_gpt2(), max_steps=2)
    plain.train()
    callback = dse_callback(probe_batch_size=5)  # padded batches of several lengths
    watched = make_trainer(tmp_path / "watched", epochs=1, model=tiny_gpt2(), callback=callback, max_steps=2)
    watched.train()
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), watched.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert losses(watched) == losses(plain)
    assert callback.history[0]["Z"]["layer"] == "score (input)" and callback.history[0]["Z"]["pool"] == "mean"
    assert all(math.isfinite(entry["dse/Z"]) for entry in entries(watched, "dse/Z"))


def baseline_values(tmp_path, batch_size, multiple, **options):
    """The epoch-0 values of tiny GPT-2 on the probe in batches of `batch_size`, padded by the
    Trainer's collator to the batch's longest sentence, or to a multiple of `multiple`."""
    callback = dse_callback(probe_batch_size=batch_size, metrics=("dse", "dsmi_y"), **options)
    trainer = make_trainer(tmp_path / f"{batch_size}_{multiple}_{options}", epochs=1, model=tiny_gpt2(), max_steps=1)
    trainer.data_collator = transformers.DataCollatorWithPadding(make_tokenizer(), pad_to_multiple_of=multiple)
    callback.attach(trainer)
    trainer.train()
    return entries(trainer, "dse/Z")[0]


def test_padding_does_not_change_the_values(tmp_path):
    """Batches of 5 padded to their longest sentence, or all 24 padded to a multiple of 16: the
    same values, as the mask keeps the padding out of the pool; without the mask (the broken
    variant, a plain mean over the pad tokens too) they differ."""
    short, long = baseline_values(tmp_path, 5, None), baseline_values(tmp_path, 24, 16)
    assert short["dse/Z"] == pytest.approx(long["dse/Z"], abs=1e-6)
    assert short["dsmi/Z_Y"] == pytest.approx(long["dsmi/Z_Y"], abs=1e-6)
    short, long = baseline_values(tmp_path, 5, None, mask_key=None), baseline_values(tmp_path, 24, 16, mask_key=None)
    assert abs(short["dse/Z"] - long["dse/Z"]) > 1e-3


# ---------------------------------------------------------------------- the probe


def test_the_first_eval_dataset_of_a_dict_is_the_probe(tmp_path):
    callback = dse_callback(metrics=("dse",))
    evals = {"small": TokenData(12, seed=2), "large": TokenData(30, seed=3)}
    trainer = make_trainer(tmp_path, epochs=1, callback=callback, eval_dataset=evals)
    trainer.train()
    assert len(callback.tracker.probe_set) == 12


def test_no_probe_and_no_eval_dataset_fails_before_training(tmp_path):
    callback = dse_callback()
    trainer = make_trainer(tmp_path, epochs=1, callback=callback)
    trainer.eval_dataset = None
    with pytest.raises(ValueError, match="eval_dataset"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_layer_output_it_cannot_read_fails_before_training(tmp_path):
    """The dry run in on_train_begin: BERT's encoder returns a ModelOutput without that field."""
    from dse_callback.probe.forward_pass import DryRunError

    callback = dse_callback(layer="bert.encoder", capture="output", output_key="no_such_field")
    trainer = make_trainer(tmp_path, epochs=1, callback=callback)
    with pytest.raises(DryRunError, match="no_such_field"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_callback_never_attached_says_how_to_attach(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.add_callback(dse_callback())
    with pytest.raises(RuntimeError, match=r"attach\(trainer\)"):
        trainer.train()


# ---------------------------------------------------------------------- two ranks


def _ddp_rank(rank: int, world_size: int, port: int, out: str) -> None:
    """One DDP rank on gloo (forked, so transformers is imported once): train one epoch."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
    )  # fmt: skip
    torch.set_num_threads(1)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # the parent's single-process state
    callback = dse_callback()
    trainer = make_trainer(os.path.join(out, "run"), epochs=1, callback=callback)
    trainer.train()
    result = {
        "world_size": trainer.args.world_size,
        "share": len(callback.tracker.probe_set.share),
        "dse": entries(trainer, "dse/Z"),
        "losses": losses(trainer),
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w") as stream:
        json.dump(result, stream)


def test_two_ddp_ranks_each_forward_a_share_and_log_the_same_values(epoch_runs, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    context = mp.start_processes(_ddp_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method="fork", join=False)
    try:
        deadline = 180
        while not context.join(timeout=1):
            deadline -= 1
            assert deadline > 0, "the DDP run did not finish (a hang in a collective?)"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    ranks = []
    for rank in (0, 1):
        with open(tmp_path / f"rank{rank}.json") as stream:
            ranks.append(json.load(stream))
    assert [result["world_size"] for result in ranks] == [2, 2]
    assert [result["share"] for result in ranks] == [12, 12]  # each rank forwarded half of the 24
    strip = lambda logged: [{k: v for k, v in e.items() if k != "dse/probe_seconds"} for e in logged]
    assert strip(ranks[0]["dse"]) == strip(ranks[1]["dse"])  # identical values on every rank
    assert [entry["step"] for entry in ranks[0]["dse"]] == [0, 2]
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 1
    single, _, _ = epoch_runs[True]  # the same initial model and probe in one process
    baseline = entries(single, "dse/Z")[0]
    assert ranks[0]["dse"][0]["dse/Z"] == pytest.approx(baseline["dse/Z"], abs=1e-9)
    assert ranks[0]["dse"][0]["dsmi/Z_Y"] == pytest.approx(baseline["dsmi/Z_Y"], abs=1e-9)
