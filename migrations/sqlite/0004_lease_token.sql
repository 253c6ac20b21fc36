-- The lease secret of the running attempt, as the hex SHA-256 of the token
-- that only the leasing worker received. The attempt number orders leases;
-- this authorises them: every fenced write must present the token. NULL
-- whenever no lease is held. Jobs running when this migration ran have no
-- digest, so their old workers are refused and the reaper returns them.
ALTER TABLE jobs ADD COLUMN lease_token_sha256 TEXT;
