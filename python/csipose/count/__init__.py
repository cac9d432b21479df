"""Person counting with CountNet: ``csipose count train | eval | predict | health``.

    from csipose.count import config
    from csipose.count.train import train
    from csipose.count.evaluate import evaluate
    run = train(config.load(None, ["train.epochs=10"]))
    report = evaluate(run, "test_unseen_env")      # dict: model and majority_baseline
    net = csipose.CountNet.load(run)               # the Rust runtime

Modules: ``config`` (the typed configuration), ``data`` (store, subcarrier map,
windows, split, z-score), ``train`` (loss, loop, temperature fit), ``calibrate``
(temperature scaling), ``metrics`` (accuracy .. ECE, majority baseline),
``evaluate`` (reports), ``plots`` (reliability diagram), ``cli``. See
docs/counting.md for the checkpoint contract and measured numbers.
"""
