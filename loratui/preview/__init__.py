"""Preview: render checkpoints x weights as a grid, score the cells, show them in a terminal, install the pick."""
