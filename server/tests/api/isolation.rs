//! Cross-user isolation: every SQL shape a user can write must stay inside the caller's own
//! partition of a USER table, and SHARED / system tables must honour roles (SPEC §3, §4.7).
//!
//! Fixture: namespace `app`, USER table `app.notes (id BIGINT PRIMARY KEY, body TEXT)`.
//! alice owns ids 1, 2 (bodies `alice-1`, `alice-2`); bob owns ids 101, 102, 103
//! (bodies `bob-101`, ...). Every attack is made by alice against bob's rows (or the reverse)
//! and must be denied (403/404) or scoped (only the caller's rows, never a `bob-` body).

use crate::common::*;
use serde_json::{Value, json};

struct Fixture {
    s: TestServer,
    alice: Auth,
    bob: Auth,
}

async fn fixture() -> Fixture {
    let s = TestServer::start().await;
    s.sql_ok(&Auth::root(), "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    let alice = s.create_user("alice").await;
    let bob = s.create_user("bob").await;
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'alice-1'), (2, 'alice-2')").await;
    s.sql_ok(&bob, "INSERT INTO app.notes (id, body) VALUES (101, 'bob-101'), (102, 'bob-102'), (103, 'bob-103')")
        .await;
    Fixture { s, alice, bob }
}

/// The JSON text of every result of a response.
fn text(r: &Resp) -> String {
    r.body["results"].to_string()
}

/// Asserts that no result of `r` contains one of bob's bodies or ids 101..=103 in an `id`
/// position (bodies are unique strings, so a text search is enough for them).
fn assert_no_bob(r: &Resp) {
    let t = text(r);
    assert!(!t.contains("bob-"), "bob's data leaked: {t}");
}

fn assert_no_alice(r: &Resp) {
    let t = text(r);
    assert!(!t.contains("alice-"), "alice's data leaked: {t}");
}

/// Bob's rows, read as bob, are exactly the fixture rows.
async fn assert_bob_untouched(f: &Fixture) {
    let r = f.s.sql_ok(&f.bob, "SELECT id, body FROM app.notes ORDER BY id").await;
    assert_eq!(
        r.rows(0),
        &vec![json!([101, "bob-101"]), json!([102, "bob-102"]), json!([103, "bob-103"])],
        "bob's rows changed"
    );
    let r = f.s.sql_ok(&f.bob, "SELECT id, _deleted FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([101, false]), json!([102, false]), json!([103, false])], "bob has tombstones");
}

async fn assert_alice_untouched(f: &Fixture) {
    let r = f.s.sql_ok(&f.alice, "SELECT id, body FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1"]), json!([2, "alice-2"])], "alice's rows changed");
}

fn first_column_i64(r: &Resp, i: usize) -> Vec<i64> {
    r.rows(i).iter().map(|row| row[0].as_i64().unwrap_or_else(|| panic!("not an integer: {row}"))).collect()
}

// ---------------------------------------------------------------------------------------
// Plain reads
// ---------------------------------------------------------------------------------------

/// Attack 1: a plain SELECT (qualified, unqualified after USE, with the request namespace,
/// and with system columns named) returns only the caller's rows.
#[tokio::test]
async fn plain_select_is_scoped() {
    let f = fixture().await;
    let r = f.s.sql_ok(&f.alice, "SELECT * FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1"]), json!([2, "alice-2"])]);
    let r = f.s.sql_ok(&f.bob, "SELECT * FROM app.notes ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 0), [101, 102, 103]);
    assert_no_alice(&r);

    let r = f.s.sql_ok(&f.alice, "USE app; SELECT id FROM notes ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 1), [1, 2]);
    let r =
        f.s.post("/v1/api/sql", &f.alice, &json!({"sql": "SELECT id FROM notes ORDER BY id", "namespace": "app"}))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(first_column_i64(&r, 0), [1, 2]);

    // Naming the system columns (which also shows tombstones) does not widen the scope.
    let r = f.s.sql_ok(&f.alice, "SELECT id, body, _updated, _deleted FROM app.notes ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 0), [1, 2]);
    assert_no_bob(&r);
    // Window functions and LIMIT/OFFSET see only the caller's rows.
    let r = f.s.sql_ok(&f.alice, "SELECT id, row_number() OVER (ORDER BY id) AS n FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, 1]), json!([2, 2])]);
    let r = f.s.sql_ok(&f.alice, "SELECT id FROM app.notes ORDER BY id LIMIT 10 OFFSET 2").await;
    assert_eq!(r.rows(0).len(), 0);
}

/// Attack 2: filtering on another user's primary key (literal, parameter, range, LIKE on
/// the other user's body) finds nothing.
#[tokio::test]
async fn where_on_other_users_primary_key_finds_nothing() {
    let f = fixture().await;
    let r = f.s.sql_ok(&f.alice, "SELECT * FROM app.notes WHERE id = 101").await;
    assert_eq!(r.rows(0).len(), 0);
    let r = f.s.sql_params(&f.alice, "SELECT * FROM app.notes WHERE id = $1", json!([102])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.rows(0).len(), 0);
    let r = f.s.sql_ok(&f.alice, "SELECT id FROM app.notes WHERE id >= 100 OR body LIKE 'bob%'").await;
    assert_eq!(r.rows(0).len(), 0);
    let r = f.s.sql_ok(&f.alice, "SELECT id FROM app.notes WHERE id IN (1, 101, 102, 103) ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 0), [1]);
}

// ---------------------------------------------------------------------------------------
// Joins, subqueries, CTEs, set operations
// ---------------------------------------------------------------------------------------

/// Attack 3: self-joins (with and without aliases, cross join, left join) only combine the
/// caller's rows.
#[tokio::test]
async fn self_join_and_aliased_join_are_scoped() {
    let f = fixture().await;
    let r =
        f.s.sql_ok(&f.alice, "SELECT a.id, b.id FROM app.notes a JOIN app.notes b ON a.id <> b.id ORDER BY a.id").await;
    assert_eq!(r.rows(0), &vec![json!([1, 2]), json!([2, 1])]);
    let r = f.s.sql_ok(&f.alice, "SELECT count(*) FROM app.notes CROSS JOIN app.notes AS other").await;
    assert_eq!(r.rows(0), &vec![json!([4])], "2 x 2 rows, not 5 x 5");
    let r =
        f.s.sql_ok(
            &f.alice,
            "SELECT mine.id, theirs.body FROM app.notes AS mine \
             LEFT JOIN app.notes AS theirs ON theirs.id = mine.id + 100 ORDER BY mine.id",
        )
        .await;
    assert_no_bob(&r);
    assert_eq!(r.rows(0), &vec![json!([1, null]), json!([2, null])]);
    // Joining through the request's default namespace as well.
    let r =
        f.s.post(
            "/v1/api/sql",
            &f.alice,
            &json!({"sql": "SELECT n.body FROM notes n JOIN app.notes m USING (id) ORDER BY n.id", "namespace": "app"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.rows(0), &vec![json!(["alice-1"]), json!(["alice-2"])]);
}

/// Attack 4: correlated, scalar and IN subqueries read only the caller's partition.
#[tokio::test]
async fn correlated_and_in_subqueries_are_scoped() {
    let f = fixture().await;
    let r =
        f.s.sql_ok(&f.alice, "SELECT id FROM app.notes WHERE id IN (SELECT id FROM app.notes WHERE id > 100)").await;
    assert_eq!(r.rows(0).len(), 0);
    let r =
        f.s.sql_ok(
            &f.alice,
            "SELECT o.id, (SELECT max(i.body) FROM app.notes i WHERE i.id = o.id) AS m, \
             (SELECT count(*) FROM app.notes i WHERE i.id = o.id + 100) AS theirs FROM app.notes o ORDER BY o.id",
        )
        .await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1", 0]), json!([2, "alice-2", 0])]);
    let r =
        f.s.sql_ok(
            &f.bob,
            "SELECT o.id FROM app.notes o WHERE o.id - 100 IN (SELECT i.id FROM app.notes i WHERE i.body = o.body) \
             OR o.id IN (SELECT i.id + 100 FROM app.notes i WHERE i.id < 100) ORDER BY o.id",
        )
        .await;
    assert_eq!(r.rows(0).len(), 0, "bob's subqueries must not see alice's ids 1, 2: {}", r.body);
    let r =
        f.s.sql_ok(&f.alice, "SELECT (SELECT count(*) FROM app.notes) AS n, (SELECT max(id) FROM app.notes) AS m")
            .await;
    assert_eq!(r.rows(0), &vec![json!([2, 2])]);
    let r = f.s.sql_ok(&f.alice, "SELECT body FROM (SELECT * FROM app.notes WHERE id > 0) AS sub ORDER BY body").await;
    assert_eq!(r.rows(0), &vec![json!(["alice-1"]), json!(["alice-2"])]);
}

/// Attack 5: CTEs (plain and recursive-looking) see only the caller's rows.
#[tokio::test]
async fn cte_is_scoped() {
    let f = fixture().await;
    let r = f
        .s
        .sql_ok(&f.alice, "WITH everyone AS (SELECT id, body FROM app.notes) SELECT id, body FROM everyone ORDER BY id")
        .await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1"]), json!([2, "alice-2"])]);
    let r =
        f.s.sql_ok(
            &f.alice,
            "WITH a AS (SELECT id FROM app.notes), b AS (SELECT id FROM app.notes WHERE id > 100) \
             SELECT (SELECT count(*) FROM a) AS na, (SELECT count(*) FROM b) AS nb",
        )
        .await;
    assert_eq!(r.rows(0), &vec![json!([2, 0])]);
}

/// Attack 6: UNION / UNION ALL / INTERSECT / EXCEPT only combine the caller's rows.
#[tokio::test]
async fn union_is_scoped() {
    let f = fixture().await;
    let r =
        f.s.sql_ok(&f.alice, "SELECT body FROM app.notes UNION SELECT body FROM app.notes AS other ORDER BY body")
            .await;
    assert_eq!(r.rows(0), &vec![json!(["alice-1"]), json!(["alice-2"])]);
    let r =
        f.s.sql_ok(&f.alice, "SELECT id FROM app.notes UNION ALL SELECT id FROM app.notes WHERE id > 100 ORDER BY id")
            .await;
    assert_eq!(first_column_i64(&r, 0), [1, 2]);
    let r =
        f.s.sql_ok(&f.alice, "SELECT count(*) FROM (SELECT id FROM app.notes UNION ALL SELECT id FROM app.notes) AS u")
            .await;
    assert_eq!(r.rows(0), &vec![json!([4])]);
    let r =
        f.s.sql_ok(&f.bob, "SELECT id FROM app.notes EXCEPT SELECT id FROM app.notes WHERE id < 100 ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 0), [101, 102, 103]);
    assert_no_alice(&r);
}

/// Attack 7: EXISTS / NOT EXISTS cannot be used as an oracle for another user's keys.
#[tokio::test]
async fn exists_cannot_probe_other_users_rows() {
    let f = fixture().await;
    let r = f.s.sql_ok(&f.alice, "SELECT 1 AS probe WHERE EXISTS (SELECT 1 FROM app.notes WHERE id = 101)").await;
    assert_eq!(r.rows(0).len(), 0, "EXISTS found bob's key");
    let r =
        f.s.sql_ok(&f.alice, "SELECT 1 AS probe WHERE NOT EXISTS (SELECT 1 FROM app.notes WHERE body = 'bob-102')")
            .await;
    assert_eq!(r.rows(0), &vec![json!([1])]);
    let r =
        f.s.sql_ok(
            &f.alice,
            "SELECT o.id FROM app.notes o WHERE EXISTS (SELECT 1 FROM app.notes i WHERE i.id = o.id + 100)",
        )
        .await;
    assert_eq!(r.rows(0).len(), 0);
}

/// Attack 8: aggregates count and sum only the caller's rows.
#[tokio::test]
async fn aggregates_count_only_own_rows() {
    let f = fixture().await;
    let r =
        f.s.sql_ok(&f.alice, "SELECT count(*), sum(id), min(id), max(id), count(DISTINCT body) FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!([2, 3, 1, 2, 2])]);
    let r = f.s.sql_ok(&f.bob, "SELECT count(*), sum(id), min(id), max(id) FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!([3, 306, 101, 103])]);
    let r = f.s.sql_ok(&f.alice, "SELECT id > 100 AS high, count(*) FROM app.notes GROUP BY id > 100 ORDER BY 1").await;
    assert_eq!(r.rows(0), &vec![json!([false, 2])]);
    let r = f.s.sql_ok(&f.alice, "SELECT string_agg(body, ',') FROM app.notes").await;
    let mut parts: Vec<&str> = r.rows(0)[0][0].as_str().unwrap().split(',').collect();
    parts.sort();
    assert_eq!(parts, ["alice-1", "alice-2"]);
}

// ---------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------

/// Attack 9: UPDATE and DELETE by another user's primary key affect 0 rows, and bob's rows
/// are unchanged afterwards (also no phantom row appears in alice's partition).
#[tokio::test]
async fn update_and_delete_by_other_users_pk_affect_nothing() {
    let f = fixture().await;
    let r = f.s.sql_ok(&f.alice, "UPDATE app.notes SET body = 'pwned' WHERE id = 101").await;
    assert_eq!(r.row_count(0), 0);
    let r = f.s.sql_params(&f.alice, "UPDATE app.notes SET body = $1 WHERE id = $2", json!(["pwned", 102])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.row_count(0), 0);
    let r = f.s.sql_ok(&f.alice, "UPDATE app.notes SET body = body || '-pwned' WHERE id = 103").await;
    assert_eq!(r.row_count(0), 0);
    let r = f.s.sql_ok(&f.alice, "DELETE FROM app.notes WHERE id = 101").await;
    assert_eq!(r.row_count(0), 0);
    let r = f.s.sql_ok(&f.alice, "DELETE FROM app.notes WHERE id > 100 OR body LIKE 'bob%'").await;
    assert_eq!(r.row_count(0), 0);
    assert_bob_untouched(&f).await;
    assert_alice_untouched(&f).await;
    let r = f.s.sql_ok(&f.alice, "SELECT id, _deleted FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, false]), json!([2, false])], "no phantom rows or tombstones for alice");
}

/// Attack 10: UPDATE / DELETE with unqualified WHERE or `WHERE id IN (subquery)` only touch
/// the caller's rows.
#[tokio::test]
async fn update_where_in_subquery_is_scoped() {
    let f = fixture().await;
    let r = f
        .s
        .sql_ok(&f.alice, "UPDATE app.notes SET body = 'pwned' WHERE id IN (SELECT id FROM app.notes WHERE id > 100)")
        .await;
    assert_eq!(r.row_count(0), 0);
    let r = f
        .s
        .sql_ok(&f.alice, "DELETE FROM app.notes WHERE id IN (SELECT id + 100 FROM app.notes) OR id IN (101, 102, 103)")
        .await;
    assert_eq!(r.row_count(0), 0);
    assert_bob_untouched(&f).await;
    // An UPDATE without WHERE updates all of the caller's rows — and only those.
    let r = f.s.sql_ok(&f.alice, "UPDATE app.notes SET body = 'alice-x'").await;
    assert_eq!(r.row_count(0), 2);
    let r = f.s.sql_ok(&f.alice, "UPDATE app.notes SET body = 'alice-y' WHERE id IN (SELECT id FROM app.notes)").await;
    assert_eq!(r.row_count(0), 2);
    assert_bob_untouched(&f).await;
    // A DELETE without WHERE deletes all of the caller's rows — and only those.
    let r = f.s.sql_ok(&f.alice, "DELETE FROM app.notes").await;
    assert_eq!(r.row_count(0), 2);
    assert_bob_untouched(&f).await;
    let r = f.s.sql_ok(&f.alice, "SELECT count(*) FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!([0])]);
}

/// Attack 11: INSERT INTO ... SELECT copies only the caller's own rows into the caller's
/// own partition.
#[tokio::test]
async fn insert_select_copies_only_own_rows() {
    let f = fixture().await;
    let r =
        f.s.sql_ok(&f.alice, "INSERT INTO app.notes (id, body) SELECT id + 1000, body || '-copy' FROM app.notes").await;
    assert_eq!(r.row_count(0), 2);
    let r = f.s.sql_ok(&f.alice, "SELECT id, body FROM app.notes ORDER BY id").await;
    assert_eq!(
        r.rows(0),
        &vec![
            json!([1, "alice-1"]),
            json!([2, "alice-2"]),
            json!([1001, "alice-1-copy"]),
            json!([1002, "alice-2-copy"])
        ]
    );
    assert_bob_untouched(&f).await;
    // Copying with a filter on bob's keys copies nothing.
    let r =
        f.s.sql_ok(
            &f.alice,
            "INSERT INTO app.notes (id, body) SELECT id + 5000, body FROM app.notes WHERE id > 100 AND id < 1000",
        )
        .await;
    assert_eq!(r.row_count(0), 0);
    assert_bob_untouched(&f).await;
}

/// Attack 12: inserting a row with the same primary key as another user's row succeeds
/// (separate partitions); each user keeps seeing only their own version, also after
/// updating and deleting it.
#[tokio::test]
async fn same_primary_key_in_two_partitions() {
    let f = fixture().await;
    let r = f.s.sql_ok(&f.alice, "INSERT INTO app.notes (id, body) VALUES (101, 'alice-101')").await;
    assert_eq!(r.row_count(0), 1);
    let r = f.s.sql_ok(&f.bob, "INSERT INTO app.notes (id, body) VALUES (1, 'bob-1')").await;
    assert_eq!(r.row_count(0), 1);
    // Each user's partition still refuses a duplicate of its own key.
    f.s.sql_err(&f.alice, "INSERT INTO app.notes (id, body) VALUES (101, 'again')", 409, "DUPLICATE_KEY").await;

    let r = f.s.sql_ok(&f.alice, "SELECT id, body FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1"]), json!([2, "alice-2"]), json!([101, "alice-101"])]);
    let r = f.s.sql_ok(&f.bob, "SELECT body FROM app.notes WHERE id = 1").await;
    assert_eq!(r.rows(0), &vec![json!(["bob-1"])]);
    let r = f.s.sql_ok(&f.alice, "SELECT body FROM app.notes WHERE id = 101").await;
    assert_eq!(r.rows(0), &vec![json!(["alice-101"])]);

    // Updating / deleting the shared key changes only the caller's version.
    let r = f.s.sql_ok(&f.bob, "UPDATE app.notes SET body = 'bob-1-edited' WHERE id = 1").await;
    assert_eq!(r.row_count(0), 1);
    let r = f.s.sql_ok(&f.alice, "DELETE FROM app.notes WHERE id = 101").await;
    assert_eq!(r.row_count(0), 1);
    let r = f.s.sql_ok(&f.alice, "SELECT body FROM app.notes WHERE id = 1").await;
    assert_eq!(r.rows(0), &vec![json!(["alice-1"])]);
    let r = f.s.sql_ok(&f.bob, "SELECT id, body FROM app.notes WHERE id IN (1, 101) ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "bob-1-edited"]), json!([101, "bob-101"])]);
}

/// Attack 13: another user's tombstones are invisible, even when the query names
/// `_deleted`, and a deleted row of bob's cannot be resurrected or seen by alice.
#[tokio::test]
async fn other_users_tombstones_are_invisible() {
    let f = fixture().await;
    f.s.sql_ok(&f.bob, "DELETE FROM app.notes WHERE id = 103").await;
    let r = f.s.sql_ok(&f.alice, "SELECT id, body, _deleted FROM app.notes ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1", false]), json!([2, "alice-2", false])]);
    let r = f.s.sql_ok(&f.alice, "SELECT count(*) FROM app.notes WHERE _deleted = true").await;
    assert_eq!(r.rows(0), &vec![json!([0])]);
    // alice's insert with that key lands in her own partition; bob's row stays a tombstone.
    f.s.sql_ok(&f.alice, "INSERT INTO app.notes (id, body) VALUES (103, 'alice-103')").await;
    let r = f.s.sql_ok(&f.bob, "SELECT id, body, _deleted FROM app.notes WHERE id = 103").await;
    assert_eq!(r.rows(0), &vec![json!([103, "bob-103", true])]);
    let r = f.s.sql_ok(&f.bob, "SELECT id FROM app.notes ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 0), [101, 102]);
}

// ---------------------------------------------------------------------------------------
// System tables and information_schema
// ---------------------------------------------------------------------------------------

/// Attack 14: a plain user and a service user cannot read `system.*` (403), also not
/// through a join, subquery or UNION with their own table.
#[tokio::test]
async fn system_tables_forbidden_for_user_and_service() {
    let f = fixture().await;
    let svc = f.s.create_user_with_role("svc", "service").await;
    for who in [&f.alice, &svc] {
        for sql in [
            "SELECT * FROM system.users",
            "SELECT username FROM system.users",
            "SELECT * FROM system.tables",
            "SELECT * FROM system.namespaces",
            "SELECT * FROM system.columns",
            "SELECT * FROM system.table_schemas",
            "SELECT n.id FROM app.notes n JOIN system.users u ON true",
            "SELECT id FROM app.notes WHERE EXISTS (SELECT 1 FROM system.users)",
            "SELECT body FROM app.notes UNION ALL SELECT username FROM system.users",
            "WITH u AS (SELECT * FROM system.users) SELECT count(*) FROM u",
            "INSERT INTO app.notes (id, body) SELECT 9000, username FROM system.users",
        ] {
            let r = f.s.sql(who, sql).await;
            assert_eq!(r.status, 403, "expected 403 for {sql}: {}", r.body);
            assert_eq!(r.code(), "FORBIDDEN", "{sql}: {}", r.body);
            assert!(!r.body.to_string().contains("root"), "system data leaked in the error: {}", r.body);
        }
    }
    // Nothing was copied by the refused INSERT ... SELECT.
    assert_alice_untouched(&f).await;
    // A dba may read them (control).
    let dba = f.s.create_user_with_role("dba1", "dba").await;
    let r = f.s.sql_ok(&dba, "SELECT count(*) FROM system.users").await;
    assert_eq!(r.rows(0), &vec![json!([5])]);
}

/// Attack 15: `information_schema` lists no system tables and no private SHARED tables to
/// a plain user, and never returns row data.
#[tokio::test]
async fn information_schema_does_not_leak() {
    let f = fixture().await;
    f.s.sql_ok(&Auth::root(), "CREATE SHARED TABLE app.secrets (id BIGINT PRIMARY KEY, v TEXT)").await;
    f.s.sql_ok(&Auth::root(), "INSERT INTO app.secrets VALUES (1, 'top-secret')").await;
    let r = f.s.sql_ok(&f.alice, "SELECT table_schema, table_name FROM information_schema.tables").await;
    let t = text(&r);
    assert!(t.contains("notes"), "own table listed: {t}");
    for row in r.rows(0) {
        // system.live_queries is readable by everyone (own rows only); no other system table.
        assert!(row[0] != "system" || row[1] == "live_queries", "system table listed to a plain user: {t}");
        assert_ne!(row[1], "secrets", "private shared table listed to a plain user: {t}");
    }
    let r =
        f.s.sql_ok(
            &f.alice,
            "SELECT table_schema, table_name, column_name FROM information_schema.columns \
             WHERE NOT (table_schema = 'system' AND table_name = 'live_queries')",
        )
        .await;
    let t = text(&r);
    assert!(!t.contains("\"system\""), "system columns listed: {t}");
    assert!(!t.contains("secrets"), "private shared table columns listed: {t}");
    assert!(!t.contains("password"), "{t}");
    for r in [
        f.s.sql_ok(&f.alice, "SELECT * FROM information_schema.tables").await,
        f.s.sql_ok(&f.alice, "SELECT * FROM information_schema.columns").await,
        f.s.sql_ok(&f.alice, "SELECT * FROM information_schema.schemata").await,
    ] {
        assert_no_bob(&r);
        let t = text(&r);
        assert!(!t.contains("top-secret"), "{t}");
    }
    // Going through information_schema does not open the system schema either.
    let r = f.s.sql(&f.alice, "SELECT * FROM information_schema.tables t JOIN system.users u ON true").await;
    assert_eq!(r.status, 403, "{}", r.body);
}

// ---------------------------------------------------------------------------------------
// EXECUTE AS USER and privileged roles
// ---------------------------------------------------------------------------------------

/// Attack 16: a plain user cannot EXECUTE AS USER (403), neither as another user nor as
/// a service.
#[tokio::test]
async fn execute_as_by_plain_user_is_forbidden() {
    let f = fixture().await;
    f.s.create_user_with_role("svc", "service").await;
    for sql in [
        "EXECUTE AS USER 'bob' (SELECT * FROM app.notes)",
        "EXECUTE AS USER 'bob' (UPDATE app.notes SET body = 'pwned')",
        "EXECUTE AS USER 'bob' (DELETE FROM app.notes WHERE id = 101)",
        "EXECUTE AS USER 'alice' (SELECT * FROM app.notes)",
        "EXECUTE AS USER 'svc' (SELECT * FROM app.notes)",
        "EXECUTE AS USER 'root' (SELECT * FROM system.users)",
    ] {
        let r = f.s.sql(&f.alice, sql).await;
        assert_eq!(r.status, 403, "expected 403 for {sql}: {}", r.body);
        assert_eq!(r.code(), "FORBIDDEN", "{sql}: {}", r.body);
    }
    assert_bob_untouched(&f).await;
}

/// Attack 17: a service acting as a user reads and writes exactly that user's partition;
/// a service cannot act as a dba or system user (403), and EXECUTE AS cannot be nested.
#[tokio::test]
async fn execute_as_by_service_is_scoped_to_target() {
    let f = fixture().await;
    let svc = f.s.create_user_with_role("svc", "service").await;
    f.s.create_user_with_role("dba1", "dba").await;

    let r = f.s.sql_ok(&svc, "EXECUTE AS USER 'alice' (SELECT id, body FROM app.notes ORDER BY id)").await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice-1"]), json!([2, "alice-2"])]);
    let r = f.s.sql_ok(&svc, "EXECUTE AS USER 'bob' (SELECT count(*) FROM app.notes)").await;
    assert_eq!(r.rows(0), &vec![json!([3])]);
    // Writes land in the target's partition only.
    let r = f.s.sql_ok(&svc, "EXECUTE AS USER 'alice' (INSERT INTO app.notes (id, body) VALUES (3, 'alice-3'))").await;
    assert_eq!(r.row_count(0), 1);
    let r = f.s.sql_ok(&svc, "EXECUTE AS USER 'alice' (UPDATE app.notes SET body = 'alice-x' WHERE id = 101)").await;
    assert_eq!(r.row_count(0), 0, "acting as alice cannot touch bob's row");
    assert_bob_untouched(&f).await;
    let r = f.s.sql_ok(&f.alice, "SELECT id FROM app.notes ORDER BY id").await;
    assert_eq!(first_column_i64(&r, 0), [1, 2, 3]);
    // The service's own partition stays empty.
    let r = f.s.sql_ok(&svc, "SELECT count(*) FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!([0])]);
    // Acting as alice gives no more than alice has: system tables stay forbidden.
    f.s.sql_err(&svc, "EXECUTE AS USER 'alice' (SELECT * FROM system.users)", 403, "FORBIDDEN").await;

    // No escalation to dba / system.
    f.s.sql_err(&svc, "EXECUTE AS USER 'dba1' (SELECT * FROM system.users)", 403, "FORBIDDEN").await;
    f.s.sql_err(&svc, "EXECUTE AS USER 'dba1' (CREATE NAMESPACE evil)", 403, "FORBIDDEN").await;
    f.s.sql_err(&svc, "EXECUTE AS USER 'root' (SELECT * FROM app.notes)", 403, "FORBIDDEN").await;
    // Nesting is refused, so a chain cannot be used to hop scopes.
    let r = f.s.sql(&svc, "EXECUTE AS USER 'alice' (EXECUTE AS USER 'bob' (SELECT * FROM app.notes))").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_no_bob(&r);
    // Unknown target.
    f.s.sql_err(&svc, "EXECUTE AS USER 'nobody' (SELECT 1)", 404, "USER_NOT_FOUND").await;
    // The namespace still does not exist.
    let r = f.s.sql_ok(&Auth::root(), "SHOW NAMESPACES").await;
    assert!(!text(&r).contains("evil"));
}

/// Attack 18: dba and root (system) without EXECUTE AS see only their own, empty,
/// partition of a USER table and cannot modify other users' rows; with EXECUTE AS they
/// act inside the target's scope.
#[tokio::test]
async fn dba_and_root_see_only_own_partition() {
    let f = fixture().await;
    let dba = f.s.create_user_with_role("dba1", "dba").await;
    for who in [&dba, &Auth::root()] {
        let r = f.s.sql_ok(who, "SELECT * FROM app.notes").await;
        assert_eq!(r.rows(0).len(), 0, "{}", r.body);
        let r = f.s.sql_ok(who, "SELECT count(*) FROM app.notes").await;
        assert_eq!(r.rows(0), &vec![json!([0])]);
        let r = f.s.sql_ok(who, "SELECT id FROM app.notes WHERE id IN (1, 101)").await;
        assert_eq!(r.rows(0).len(), 0);
        let r = f.s.sql_ok(who, "UPDATE app.notes SET body = 'admin-was-here' WHERE id = 101").await;
        assert_eq!(r.row_count(0), 0);
        let r = f.s.sql_ok(who, "DELETE FROM app.notes WHERE id IN (1, 2, 101, 102, 103)").await;
        assert_eq!(r.row_count(0), 0);
    }
    assert_bob_untouched(&f).await;
    assert_alice_untouched(&f).await;
    // With EXECUTE AS a dba acts inside the target user's scope.
    let r = f.s.sql_ok(&dba, "EXECUTE AS USER 'bob' (SELECT id FROM app.notes ORDER BY id)").await;
    assert_eq!(first_column_i64(&r, 0), [101, 102, 103]);
    let r = f.s.sql_ok(&Auth::root(), "EXECUTE AS USER 'alice' (SELECT id FROM app.notes ORDER BY id)").await;
    assert_eq!(first_column_i64(&r, 0), [1, 2]);
    // A dba cannot act as root (system).
    f.s.sql_err(&dba, "EXECUTE AS USER 'root' (SELECT 1)", 403, "FORBIDDEN").await;
}

// ---------------------------------------------------------------------------------------
// SHARED tables
// ---------------------------------------------------------------------------------------

/// Attack 19: a SHARED table with the default (private) access level is closed to plain
/// users for reads and writes, also through subqueries, joins and INSERT ... SELECT.
#[tokio::test]
async fn private_shared_table_is_closed_to_users() {
    let f = fixture().await;
    let root = Auth::root();
    f.s.sql_ok(&root, "CREATE SHARED TABLE app.config (id BIGINT PRIMARY KEY, v TEXT)").await;
    f.s.sql_ok(&root, "INSERT INTO app.config VALUES (1, 'secret-config')").await;
    for sql in [
        "SELECT * FROM app.config",
        "SELECT count(*) FROM app.config",
        "SELECT id FROM app.notes WHERE id IN (SELECT id FROM app.config)",
        "SELECT n.body, c.v FROM app.notes n JOIN app.config c ON n.id = c.id",
        "SELECT body FROM app.notes UNION ALL SELECT v FROM app.config",
        "INSERT INTO app.config (id, v) VALUES (2, 'user-write')",
        "UPDATE app.config SET v = 'pwned' WHERE id = 1",
        "DELETE FROM app.config WHERE id = 1",
        "INSERT INTO app.notes (id, body) SELECT id + 500, v FROM app.config",
        "UPDATE app.notes SET body = 'x' WHERE id IN (SELECT id FROM app.config)",
    ] {
        let r = f.s.sql(&f.alice, sql).await;
        assert_eq!(r.status, 403, "expected 403 for {sql}: {}", r.body);
        assert_eq!(r.code(), "FORBIDDEN", "{sql}: {}", r.body);
        assert!(!r.body.to_string().contains("secret-config"), "{}", r.body);
    }
    let r = f.s.sql_ok(&root, "SELECT id, v FROM app.config").await;
    assert_eq!(r.rows(0), &vec![json!([1, "secret-config"])]);
    assert_alice_untouched(&f).await;
    // A service may read and write it (control).
    let svc = f.s.create_user_with_role("svc", "service").await;
    let r = f.s.sql_ok(&svc, "SELECT v FROM app.config").await;
    assert_eq!(r.rows(0), &vec![json!(["secret-config"])]);
}

/// Attack 20: a SHARED table with `access_level = 'public'` is readable by a plain user but
/// not writable (403); a service may write it.
#[tokio::test]
async fn public_shared_table_is_read_only_for_users() {
    let f = fixture().await;
    let root = Auth::root();
    f.s.sql_ok(&root, "CREATE SHARED TABLE app.news (id BIGINT PRIMARY KEY, v TEXT) WITH (access_level = 'public')")
        .await;
    f.s.sql_ok(&root, "INSERT INTO app.news VALUES (1, 'hello')").await;
    for who in [&f.alice, &f.bob] {
        let r = f.s.sql_ok(who, "SELECT id, v FROM app.news").await;
        assert_eq!(r.rows(0), &vec![json!([1, "hello"])]);
    }
    // Joining the public table with the user table still scopes the user table.
    let r = f.s.sql_ok(&f.alice, "SELECT n.id, s.v FROM app.notes n CROSS JOIN app.news s ORDER BY n.id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "hello"]), json!([2, "hello"])]);
    for sql in [
        "INSERT INTO app.news (id, v) VALUES (2, 'spam')",
        "UPDATE app.news SET v = 'defaced' WHERE id = 1",
        "UPDATE app.news SET v = 'defaced'",
        "DELETE FROM app.news WHERE id = 1",
        "DELETE FROM app.news",
        "INSERT INTO app.news (id, v) SELECT id + 10, body FROM app.notes",
    ] {
        let r = f.s.sql(&f.alice, sql).await;
        assert_eq!(r.status, 403, "expected 403 for {sql}: {}", r.body);
        assert_eq!(r.code(), "FORBIDDEN", "{sql}: {}", r.body);
    }
    let r = f.s.sql_ok(&f.bob, "SELECT id, v, _deleted FROM app.news").await;
    assert_eq!(r.rows(0), &vec![json!([1, "hello", false])], "public table unchanged");
    let svc = f.s.create_user_with_role("svc", "service").await;
    let r = f.s.sql_ok(&svc, "INSERT INTO app.news (id, v) VALUES (2, 'from service')").await;
    assert_eq!(r.row_count(0), 1);
    let r = f.s.sql_ok(&f.alice, "SELECT count(*) FROM app.news").await;
    assert_eq!(r.rows(0), &vec![json!([2])]);
}

/// Attack 21: parameters cannot smuggle SQL; a quoted payload is just a value.
#[tokio::test]
async fn parameters_do_not_inject() {
    let f = fixture().await;
    let payload = "x' OR '1'='1";
    let r = f.s.sql_params(&f.alice, "SELECT id FROM app.notes WHERE body = $1", json!([payload])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.rows(0).len(), 0);
    let r = f.s.sql_params(&f.alice, "UPDATE app.notes SET body = $1 WHERE id = $2", json!([payload, 1])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.row_count(0), 1);
    let r = f.s.sql_ok(&f.alice, "SELECT body FROM app.notes WHERE id = 1").await;
    assert_eq!(r.rows(0), &vec![Value::Array(vec![json!(payload)])]);
    assert_bob_untouched(&f).await;
}

/// Statements of different users running at the same moment each plan against their own
/// catalog: no statement ever sees another user's partition or runs with their role.
#[tokio::test]
async fn concurrent_statements_of_different_users_stay_apart() {
    let f = fixture().await;
    let root = Auth::root();
    const ROUNDS: usize = 150;
    // Each user reads their own rows, again and again, beside the others.
    let reads = |auth: &Auth, who: &'static str, rows: usize| {
        let (s, auth) = (&f.s, auth.clone());
        async move {
            for _ in 0..ROUNDS {
                let r = s.sql_ok(&auth, "SELECT CURRENT_USER(), id, body FROM app.notes ORDER BY id").await;
                assert!(r.rows(0).iter().all(|row| row[0] == who), "CURRENT_USER() is not {who}: {}", text(&r));
                let others = if who == "alice" { "bob-" } else { "alice-" };
                assert!(!text(&r).contains(others), "{who} sees another user's rows: {}", text(&r));
                assert_eq!(r.rows(0).len(), rows, "{who} sees their {rows} rows: {}", text(&r));
            }
        }
    };
    let alice_reads = reads(&f.alice, "alice", 2);
    let bob_reads = reads(&f.bob, "bob", 3);
    let alice_system = async {
        for _ in 0..ROUNDS {
            f.s.sql_err(&f.alice, "SELECT count(*) FROM system.users", 403, "FORBIDDEN").await;
        }
    };
    let root_system = async {
        for _ in 0..ROUNDS {
            f.s.sql_ok(&root, "SELECT count(*) FROM system.users").await;
        }
    };
    tokio::join!(alice_reads, bob_reads, alice_system, root_system);
}
