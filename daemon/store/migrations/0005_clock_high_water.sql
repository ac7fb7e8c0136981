-- The latest trusted time any node saw: a node whose clock was set back judges
-- licenses against it instead (see daemon/clock.py).
ALTER TABLE meta ADD COLUMN clock_high_water DOUBLE PRECISION NOT NULL DEFAULT 0
