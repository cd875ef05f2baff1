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
