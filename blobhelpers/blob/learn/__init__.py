"""Models (imports data and below): architectures, training, inference and saliency, an unsupervised baseline.

TensorFlow is imported lazily, only through :func:`blobhelpers.core.deeplearning.keras_module` and
:func:`blobhelpers.core.deeplearning.tensorflow`; importing these modules does not load it, except
:mod:`.training`, whose batch sequence subclasses Keras' ``PyDataset``.

Modules
-------
cnn
    model factories (isr2021, deepwfc3, blobnet, tiny), loading a model with its preprocessing
training
    training recipes (ISR Adam+SGD, AdamW cosine), checkpoints that resume, reproducible saving
inference
    logits in batches and saliency maps of a trained model
registry
    the deployed model (``models/best.keras`` + ``best.json``): published once, found by every user
anomaly
    patch PCA fitted on blob-free tiles only (the ISR's unsupervised future work)
"""

__all__ = ["cnn", "training", "inference", "registry", "anomaly"]
