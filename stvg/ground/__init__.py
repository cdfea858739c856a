"""``stvg ground``: a trained run on the user's own videos and sentences, long videos in
windows of the run's training length (:mod:`stvg.ground.run` reads top to bottom)."""
