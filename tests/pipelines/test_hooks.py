"""What a run shows in MLflow: its name, a readable runner, the command as typed."""

from wpnas.pipelines.hooks import MAX_RUN_NAME, command_line, run_name, runner_name


def test_run_name_tells_runs_apart():
    assert run_name("search", "local", 0, {"search": {"epochs": 3}}) == "search|local|seed=0|search.epochs=3"
    assert run_name("warmup+ground_truth", "cifar10", 2, None) == "warmup+ground_truth|cifar10|seed=2"
    # the seed shows once, whether it comes from parameters.yml or the command line
    assert run_name("search", "local", 3, {"run": {"seed": 3, "device": "cpu"}}) == "search|local|seed=3|run.device=cpu"


def test_run_name_is_cut_to_what_mlflow_accepts():
    name = run_name("search", "local", 0, {"data": {"root": "/x" * 400}})
    assert len(name) == MAX_RUN_NAME and name.endswith("...") and name.startswith("search|local|seed=0|data.root=")


def test_runner_tag_is_the_class_name():
    from kedro.runner import SequentialRunner

    assert runner_name(str(SequentialRunner())) == "SequentialRunner"  # what Kedro records
    assert runner_name(SequentialRunner()) == "SequentialRunner"
    assert runner_name("None") == runner_name(None) == "SequentialRunner"


def test_command_is_shown_as_typed():
    argv = ["/work/.venv/bin/kedro", "run", "--pipelines=search", "--params", "search.epochs=3,run.seed=1"]
    assert command_line(argv) == "kedro run --pipelines=search --params search.epochs=3,run.seed=1"
    assert command_line(["/x/src/wpnas/__main__.py", "--params", "a=1 b"]) == "python -m wpnas --params 'a=1 b'"
