-- jobprep's own schema: functions only, no tables, so that a use case that must take a
-- lock before it reads is still one statement, one round trip. Statements inside a
-- function each take a fresh snapshot (at READ COMMITTED), so what they read after the
-- lock includes what the lock's previous holder committed; one plain statement would
-- read from the snapshot it started with. The app's schema is untouched, and drizzle-kit,
-- which only looks at `public`, never sees these. Table names are unqualified, as in every
-- jobprep statement: they resolve through the caller's search_path. The functions run
-- with the caller's rights (SECURITY INVOKER), so any role may call them.
CREATE SCHEMA IF NOT EXISTS jobprep;
GRANT USAGE ON SCHEMA jobprep TO PUBLIC;

-- The plan quota's turn (crates/repo/src/quota.rs): a no-op update of the user's row
-- makes the user's quota-checked writes take turns until the transaction ends; then
-- the count. Returns how many questions the user has. An update rather than SELECT ...
-- FOR UPDATE: at REPEATABLE READ or SERIALIZABLE (a server or role default, or a
-- caller's choice) the snapshot may predate the previous holder's commit, and updating
-- the row makes PostgreSQL refuse that case with a serialization failure (retryable)
-- instead of counting stale. The lock is FOR NO KEY UPDATE (no key changes), so it does
-- not block the foreign-key checks of concurrent job info inserts; the update changes
-- nothing, so the cache feed records nothing. A missing user locks nothing and owns
-- nothing: the count is 0 and the write finds no job info.
CREATE OR REPLACE FUNCTION jobprep.questions_used_after_turn(p_user text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE users u SET "updatedAt" = u."updatedAt" WHERE u.id = p_user;
    RETURN (SELECT count(*) FROM questions q JOIN job_info j ON j.id = q."jobInfoId"
            WHERE j."userId" = p_user);
END
$$;

-- The same for interviews with a chat id. With `p_interview` (setting the chat id of
-- an existing interview), NULL when that interview already counts or is not the user's:
-- the write then uses no quota, or finds nothing to change.
CREATE OR REPLACE FUNCTION jobprep.interviews_used_after_turn(p_user text, p_interview uuid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE users u SET "updatedAt" = u."updatedAt" WHERE u.id = p_user;
    IF p_interview IS NOT NULL AND NOT EXISTS (
        SELECT FROM interviews i JOIN job_info j ON j.id = i."jobInfoId"
        WHERE i.id = p_interview AND j."userId" = p_user AND i."humeChatId" IS NULL
    ) THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT count(*) FROM interviews i JOIN job_info j ON j.id = i."jobInfoId"
            WHERE j."userId" = p_user AND i."humeChatId" IS NOT NULL);
END
$$;

-- Deletes the user's job info and returns what the cascade removes with it: one row
-- per interview and question, then the job info's own. The job info is locked first,
-- so no interview or question can be added between listing and deleting (an insert's
-- foreign-key check waits for the lock). Nothing when the job info is not the user's.
CREATE OR REPLACE FUNCTION jobprep.delete_job_info(p_user text, p_id uuid)
RETURNS TABLE (removed_kind text, removed_id uuid, removed_job_info_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM FROM job_info j WHERE j.id = p_id AND j."userId" = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT 'interview', i.id, i."jobInfoId" FROM interviews i WHERE i."jobInfoId" = p_id
        UNION ALL
        SELECT 'question', q.id, q."jobInfoId" FROM questions q WHERE q."jobInfoId" = p_id;
    DELETE FROM job_info j WHERE j.id = p_id;
    RETURN QUERY SELECT 'job_info', p_id, NULL::uuid;
END
$$;

-- Deletes the user and returns what the cascade removes: job infos, interviews and
-- questions, then a 'user' row. The user and their job infos are locked first, for the
-- same reason. Nothing when there is no such user.
CREATE OR REPLACE FUNCTION jobprep.delete_user(p_user text)
RETURNS TABLE (removed_kind text, removed_id uuid, removed_job_info_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM FROM users u WHERE u.id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM FROM job_info j WHERE j."userId" = p_user FOR UPDATE;
    RETURN QUERY
        SELECT 'job_info', j.id, NULL::uuid FROM job_info j WHERE j."userId" = p_user
        UNION ALL
        SELECT 'interview', i.id, i."jobInfoId"
        FROM interviews i JOIN job_info j ON j.id = i."jobInfoId" WHERE j."userId" = p_user
        UNION ALL
        SELECT 'question', q.id, q."jobInfoId"
        FROM questions q JOIN job_info j ON j.id = q."jobInfoId" WHERE j."userId" = p_user;
    DELETE FROM users u WHERE u.id = p_user;
    RETURN QUERY SELECT 'user', NULL::uuid, NULL::uuid;
END
$$;
