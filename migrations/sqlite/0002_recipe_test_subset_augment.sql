-- Two recipe fields for quick studies and augmentation ablations:
-- evaluate each epoch on the first N test images only (0 = all), and
-- train with or without random crops and flips (1 = the paper's recipe).
ALTER TABLE jobs ADD COLUMN test_subset INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN augment INTEGER NOT NULL DEFAULT 1;
