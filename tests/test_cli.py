

def test_latency_options_are_spelled_alike_in_every_command_and_the_old_spelling_still_reads(capsys):
    from autoprune.cli.main import build_parser

    parser = build_parser()
    for command in (["profile"], ["export", "m.pt"], ["dynamic", "p.json"]):
        args = parser.parse_args([*command, "--latency-threads", "3", "--latency-batch", "8"])
        assert (args.latency_threads, args.latency_batch) == (3, 8)
    args = parser.parse_args(["export", "m.pt", "--threads", "2", "--batch-size", "4"])
    assert (args.latency_threads, args.latency_batch) == (2, 4)
    assert "--threads is now --latency-threads" in capsys.readouterr().err
