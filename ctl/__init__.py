"""The client commands of ``paragon-licensed ctl``: stdlib only, so that they start fast."""
