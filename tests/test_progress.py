import logging

import pytest

from wpnas.progress import Progress


def test_redirected_output_logs_periodic_lines(caplog):
    caplog.set_level(logging.INFO, logger="wpnas.progress")
    with Progress(total=3, desc="warmup", unit="epoch", log_every=0.0, interactive=False) as p:
        for i in range(3):
            p.update_metrics(loss=1.0 / (i + 1), acc=0.5)
            p.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[-1].startswith("warmup: 3/3 epoch elapsed") and "eta" in lines[-1] and "loss=0.3333" in lines[-1]


def test_interactive_uses_a_bar(capsys):
    with Progress(total=2, desc="x", interactive=True) as p:
        p.advance(2)
    assert p._bar is None  # closed


def test_at_most_one_line_per_interval_and_no_final_line_when_asked(caplog, monkeypatch):
    import wpnas.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    caplog.set_level(logging.INFO, logger="wpnas.progress")
    with Progress(total=9, desc="gt", unit="arch", log_every=30.0, interactive=False, log_final=False) as p:
        for _ in range(9):
            now[0] += 10.0  # one item every 10 s: a line every third item
            p.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" elapsed")[0] for line in lines] == ["gt: 3/9 arch", "gt: 6/9 arch", "gt: 9/9 arch"]
    caplog.clear()
    with Progress(total=4, desc="gt", unit="arch", log_every=30.0, interactive=False, log_final=False) as p:
        for _ in range(4):
            now[0] += 1.0
            p.advance()
    assert caplog.records == []  # under 30 s: the caller's summary line is the only one


def test_a_long_epoch_logs_its_position_within(caplog, monkeypatch):
    """An epoch of many batches still prints a line every log_every seconds, with the batch and an ETA."""
    import wpnas.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    caplog.set_level(logging.INFO, logger="wpnas.progress")
    with Progress(total=2, desc="warmup", unit="epoch", log_every=30.0, interactive=False) as p:
        for done in range(1, 101):
            now[0] += 1.0  # 100 s for the first epoch, one batch a second
            p.within(done, 100)
            if done == 40:
                assert p.eta() == pytest.approx(40 / 0.4 * 1.6)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" elapsed")[0] for line in lines] == ["warmup: 0/2 epoch (batch 30/100)",
                                                             "warmup: 0/2 epoch (batch 60/100)",
                                                             "warmup: 0/2 epoch (batch 90/100)"]
    assert "eta 02:50" in lines[0]  # 30 s for 0.3 of an epoch, 1.7 epochs left: 170 s
