"""Pretraining objectives. Each is registered in the ``zoo.objectives`` entry-point group and loaded
on demand through ``zoo.registry``; ``zoo.objectives.compose`` builds specs such as ``mlm+nsp``."""
