"""``stvg bench``: the measured ratios of docs/design.md section 10, quoted in BENCHMARKS.md.

Each figure is one plain function returning a JSON-able dict; every ratio compares two
measurements taken in the same run on the same inputs (absolute times on a shared CPU mean
little, ratios do). All of them time with :class:`stvg.bench.timer.Timer` and are printed /
saved by :func:`stvg.bench.report.report`.

- :func:`stvg.bench.extract.bench_extract`: stage one's throughput (frames/s through the real
  runner: decode, preprocess, backbones, store write) over the bare backbone forward on the same
  preprocessed tensors with the same batch sizes; plus, in full mode, the speed knobs (bf16
  autocast, channels_last, batch size), and the store figures below.
- :mod:`stvg.bench.store`: store bytes per video-second at HC-STVG sizes (float16 vs int8) and
  zarr vs HDF5 random-read speed.
- :func:`stvg.bench.train.bench_train`: a training step with features in RAM over the same step
  reading the store lazily through DataLoader workers, as the trainer does; the step is the
  trainer's own :func:`stvg.train.trainer.train_step`.
- :func:`stvg.bench.e2e.bench_e2e`: cost per training sample decoding the video and running the
  backbones plus the heads, over the heads fed from the store.
- :func:`stvg.bench.video.bench_video`: the video Swin backbone over the default SlowFast per
  clip (CPU time, wall time, GFLOPs) on the same clips.
"""
