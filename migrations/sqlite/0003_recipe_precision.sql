-- The arithmetic a job trains in: 'f32', or 'bf16' mixed precision (bf16
-- convolutions and activations, f32 master weights). Jobs written before
-- this column existed trained in f32.
ALTER TABLE jobs ADD COLUMN precision TEXT NOT NULL DEFAULT 'f32';
