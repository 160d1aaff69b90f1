-- The comparison dataset, the shape `jobprep bench` seeds: 1,000 users, each with 2 job
-- infos, each job info with 2 interviews and 3 questions. Ids are derived from numbers
-- so a benchmark client can name an existing row without asking the server first:
--   user n     = 'user_bench_' || lpad(n, 6, '0')                     n in 0..999
--   job info k = '00000000-0000-4000-8000-' || lpad(k, 12, '0')        k in 0..1999,
--                owned by user k / 2.
-- Run on a freshly migrated, empty database; then VACUUM ANALYZE.
INSERT INTO "users" ("id", "name", "email", "createdAt", "updatedAt")
SELECT 'user_bench_' || lpad(n::text, 6, '0'), 'Bench user ' || n,
       'bench' || n || '@bench.example',
       now() - interval '1 day' + n * interval '1 second',
       now() - interval '1 day' + n * interval '1 second'
FROM generate_series(0, 999) AS n;

INSERT INTO "job_info" ("id", "title", "name", "experienceLevel", "description", "userId",
                        "createdAt", "updatedAt")
SELECT ('00000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, NULL, 'Job ' || (k % 2),
       (ARRAY['junior', 'mid-level', 'senior']::job_infos_experience_level[])[1 + (k / 2 + k % 2) % 3],
       'Seeded for the benchmark', 'user_bench_' || lpad((k / 2)::text, 6, '0'),
       now() - interval '1 day' + k * interval '1 second',
       now() - interval '1 day' + k * interval '1 second'
FROM generate_series(0, 1999) AS k;

INSERT INTO "interviews" ("id", "jobInfoId", "duration", "humeChatId", "createdAt", "updatedAt")
SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid,
       '00:10:00', 'chat_' || (k / 2) || '_' || (k % 2) || '_' || i,
       now() - interval '1 day' + (2 * k + i) * interval '1 second',
       now() - interval '1 day' + (2 * k + i) * interval '1 second'
FROM generate_series(0, 1999) AS k, generate_series(0, 1) AS i;

INSERT INTO "questions" ("id", "jobInfoId", "text", "difficulty", "createdAt", "updatedAt")
SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid,
       'Seed question ' || q, 'medium',
       now() - interval '1 day' + (3 * k + q) * interval '1 second',
       now() - interval '1 day' + (3 * k + q) * interval '1 second'
FROM generate_series(0, 1999) AS k, generate_series(0, 2) AS q;
