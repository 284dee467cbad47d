import pytest
import torch

from slimvision.cli import run


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests share 2 cores; pin threads so timings and runs do not fight each other.
    torch.set_num_threads(1)
    yield


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit_code, stdout, stderr)."""

    def invoke(*args: str):
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
