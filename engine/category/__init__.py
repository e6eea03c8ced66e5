"""Learning a category's deformable mesh from images (seed 001, section 2): the image encoder,
the prediction heads, the camera multiplex and deformation databases, the losses, the trainer
and its checkpoints."""
