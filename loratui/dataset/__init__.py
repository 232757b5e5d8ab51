"""The dataset stages: scan and open pictures, crop them into kohya's layout, tag them, edit their captions."""
