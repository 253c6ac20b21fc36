-- Every worker holds a secret of its own, returned by RegisterWorker and
-- required by LeaseJob: the worker credential is shared by all workers, so
-- without it any of them could lease under another's id. Only the secret's
-- SHA-256 is stored (hex); rows registered before this have none and cannot
-- lease (their workers register again when they restart).
ALTER TABLE workers ADD COLUMN secret_sha256 TEXT;
