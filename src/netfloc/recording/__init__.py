"""Recording: hooks that copy layer outputs (:mod:`~netfloc.recording.hooks`), their layouts and units
(:mod:`~netfloc.recording.layouts`), layer names (:mod:`~netfloc.recording.layers`) and the streaming image
loader (:mod:`~netfloc.recording.loader`)."""
