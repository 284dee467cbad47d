from slimvision.progress import progress_bar


def test_progress_bar_leaves_stdout_untouched(capsys):
    # stdout carries --json output and must not get even a blank line from a finished bar
    with progress_bar() as bar:
        task = bar.add_task("work", total=2)
        bar.advance(task, 2)
    assert capsys.readouterr().out == ""


def test_disabled_progress_bar_prints_nothing(capsys):
    with progress_bar(enabled=False) as bar:
        bar.advance(bar.add_task("work", total=1))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
