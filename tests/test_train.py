"""pipeline/train.py's own pieces: the history CSV that `dvc plots` reads.

What train wires together has its own test files under tests/lstm/ and tests/tracking/; the stage
as a whole runs in tests/scenarios/ (resume, faults, the pipeline's repro)."""

from pipeline.train import history_csv


def test_history_csv_numbers_epochs_from_one():
    text = history_csv({"val_loss": [2.5, 2.25], "loss": [3.0, 2.0]})
    assert text == "epoch,loss,val_loss\n1,3.000000,2.500000\n2,2.000000,2.250000\n"
