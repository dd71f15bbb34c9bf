"""What a trained model is: ``network`` (smp encoder + DeepLabV3+ decoders), ``checkpoint``
(safetensors weights + a JSON card, no code), ``precision`` (the device and the autocast
precision it computes natively), ``registry`` (the built-in models, checked by sha256), whose
weights and cards ship in ``builtin/``."""
