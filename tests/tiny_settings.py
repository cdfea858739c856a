"""The tiny settings the end-to-end tests share (importable from any test: pytest puts tests/
on the path): extraction at 48 px with 4 clips and one text layer, a one-layer CSDVL of width 32
on 4 frames, batches of 2."""

TINY_EXTRACT = {"td": 4, "clip_size": 32, "n_short": 48, "text_layers": 1}
TINY_TRAIN = [
    "model.d_model=32",
    "model.n_layers=1",
    "model.n_encoder_layers=1",
    "model.n_heads=2",
    "model.dim_feedforward=32",
    "model.d_map=16",
    "num_frames=4",
    "batch_size=2",
]
