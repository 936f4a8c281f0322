"""Fine-tuning services behind one interface (:mod:`reconciler.providers.base`)."""
