import logging

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
