//! `kalam` without a terminal: `-c`, `-f`, stdin, output formats, exit codes, sign-in
//! failures, profiles, meta-commands and job progress, against the real server.

mod common;

use common::{Home, ROOT_PASSWORD, TestServer, kalam, root, run};

/// One line on stderr, nothing on stdout.
fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{stderr}");
    lines[0]
}

#[test]
fn dash_c_runs_every_statement_and_prints_aligned_tables() {
    let server = TestServer::start();
    let home = Home::new();
    let r = root(
        &server,
        &home,
        &[
            "-c",
            "CREATE NAMESPACE shop; CREATE USER TABLE shop.items (id BIGINT PRIMARY KEY, name TEXT, price DOUBLE)",
            "-c",
            "INSERT INTO shop.items (id, name, price) VALUES (1, 'pen', 1.5), (20, 'notebook', 12.25); \
             SELECT id, name, price FROM shop.items ORDER BY id",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    let expected =
        " id | name     | price\n----+----------+-------\n  1 | pen      |   1.5\n 20 | notebook | 12.25\n(2 rows)\n";
    assert!(r.stdout.ends_with(expected), "{}", r.stdout);
    assert!(r.stdout.contains("Inserted 2 row(s)"), "{}", r.stdout);
    // Without --timing a script's output has no times in it (so it can be compared).
    assert!(!r.stdout.contains("Time:"), "{}", r.stdout);
    let timed = root(&server, &home, &["--timing", "-c", "SELECT 1 AS one"]);
    assert!(timed.stdout.contains("(1 row)\nTime: "), "{}", timed.stdout);
}

#[test]
fn a_failing_statement_is_named_and_stops_the_script_with_exit_1() {
    let server = TestServer::start();
    let home = Home::new();
    let file = home.path().join("setup.sql");
    std::fs::write(&file, "-- a script\nCREATE NAMESPACE s1;\n\nSELECT *\n  FROM s1.missing;\nCREATE NAMESPACE s2;\n")
        .unwrap();
    let r = root(&server, &home, &["-f", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    let location = format!("{}:4", file.display());
    assert!(r.stderr.contains(&format!("kalam: {location}: ERROR: TABLE_NOT_FOUND")), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("kalam: {location}: failed statement: SELECT * FROM s1.missing")),
        "{}",
        r.stderr
    );
    // The statement before ran, the one after did not.
    let names: Vec<String> =
        server.rows("SHOW NAMESPACES").iter().map(|row| row[0].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"s1".to_string()) && !names.contains(&"s2".to_string()), "{names:?}");
    // A missing file is a usage error (3), after what came before it ran.
    let r = root(&server, &home, &["-c", "CREATE NAMESPACE s3", "-f", "/nonexistent/x.sql"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(one_line(&r.stderr).starts_with("kalam: cannot read /nonexistent/x.sql:"), "{}", r.stderr);
    assert_eq!(server.rows("SHOW NAMESPACES").iter().filter(|row| row[0] == "s3").count(), 1);
}

#[test]
fn stdin_is_read_when_it_is_not_a_terminal_and_formats_apply() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE NAMESPACE f; CREATE SHARED TABLE f.t (id INT PRIMARY KEY, label TEXT)");
    server.sql("INSERT INTO f.t (id, label) VALUES (1, 'a,b'), (2, NULL)");
    let mut cmd = server.kalam(&home);
    cmd.args(["-u", "root", "--format", "csv"]).env("KALAM_PASSWORD", ROOT_PASSWORD);
    let r = run(cmd, "SELECT id, label\n  FROM f.t ORDER BY id;\nUPDATE f.t SET label = 'c' WHERE id = 2;\n");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "id,label\n1,\"a,b\"\n2,\n");
    // In CSV the non-query message goes to stderr, so stdout stays CSV.
    assert_eq!(r.stderr.trim(), "Updated 1 row(s)");

    let mut cmd = server.kalam(&home);
    cmd.args(["-u", "root", "--format", "json"]).env("KALAM_PASSWORD", ROOT_PASSWORD);
    let r = run(cmd, "SELECT id, label FROM f.t ORDER BY id");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "[{\"id\":1,\"label\":\"a,b\"},{\"id\":2,\"label\":\"c\"}]\n");
    let parsed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(parsed[1]["label"], "c");
}

#[test]
fn commands_and_files_run_in_command_line_order_and_use_persists() {
    let server = TestServer::start();
    let home = Home::new();
    let file = home.path().join("insert.sql");
    std::fs::write(&file, "INSERT INTO o.t (id) VALUES (2);").unwrap();
    let r = root(
        &server,
        &home,
        &[
            "-c",
            "CREATE NAMESPACE o; CREATE SHARED TABLE o.t (id INT PRIMARY KEY); INSERT INTO o.t (id) VALUES (1)",
            "-f",
            file.to_str().unwrap(),
            "-c",
            "USE o; SELECT count(*) AS n FROM t",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(" n\n---\n 2\n(1 row)"), "{}", r.stdout);
    // -n sets the namespace from the start.
    let r = root(&server, &home, &["-n", "o", "--format", "csv", "-c", "SELECT max(id) AS m FROM t"]);
    assert_eq!(r.stdout, "m\n2\n", "{r:?}");
}

#[test]
fn a_wrong_password_is_one_clear_line_and_exit_2() {
    let server = TestServer::start();
    let home = Home::new();
    let mut cmd = server.kalam(&home);
    cmd.args(["-u", "root", "-c", "SELECT 1"]).env("KALAM_PASSWORD", "not-the-password");
    let r = run(cmd, "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    let line = one_line(&r.stderr);
    assert!(line.starts_with(&format!("kalam: cannot sign in to {} as root: ", server.url)), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
    // A token that is not one: the same kind of line.
    let mut cmd = server.kalam(&home);
    cmd.args(["--token", "not.a.token", "-c", "SELECT 1"]);
    let r = run(cmd, "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(one_line(&r.stderr).starts_with(&format!("kalam: cannot sign in to {}: ", server.url)), "{}", r.stderr);
}

#[test]
fn an_unreachable_server_is_one_clear_line_and_exit_2() {
    // Bind, then close: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let home = Home::new();
    let mut cmd = kalam(&home);
    cmd.args(["--url", &format!("http://127.0.0.1:{port}"), "-u", "root", "-c", "SELECT 1"])
        .env("KALAM_PASSWORD", "whatever");
    let r = run(cmd, "");
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(one_line(&r.stderr), format!("kalam: cannot connect to http://127.0.0.1:{port}: connection refused"));
    assert!(r.stdout.is_empty());
}

#[test]
fn no_credentials_and_bad_arguments_are_usage_errors() {
    let home = Home::new();
    let mut cmd = kalam(&home);
    cmd.args(["-c", "SELECT 1"]);
    let r = run(cmd, "");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(one_line(&r.stderr).starts_with("kalam: no credentials: use --user NAME"), "{}", r.stderr);
    let mut cmd = kalam(&home);
    cmd.args(["--format", "xml"]);
    assert_eq!(run(cmd, "").code, 3);
    let mut cmd = kalam(&home);
    cmd.arg("--help");
    let r = run(cmd, "");
    assert_eq!(r.code, 0, "{r:?}");
    for flag in
        ["--url", "--user", "--token", "--profile", "--save-profile", "--command", "--file", "--format", "Exit codes"]
    {
        assert!(r.stdout.contains(flag), "--help lacks {flag}:\n{}", r.stdout);
    }
}

#[test]
fn a_saved_profile_signs_in_without_the_password_and_stays_private() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE NAMESPACE p; CREATE SHARED TABLE p.t (id INT PRIMARY KEY); INSERT INTO p.t (id) VALUES (7)");
    let r = root(&server, &home, &["--save-profile", "local", "-n", "p", "-c", "SELECT 1 AS one"]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(home.profiles()).unwrap();
    assert!(
        text.contains("[profiles.local]") && text.contains(&server.url) && text.contains("user = \"root\""),
        "{text}"
    );
    assert!(text.contains("refresh_token = "), "{text}");
    assert!(!text.contains(ROOT_PASSWORD), "the password is never saved");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.profiles()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let saved_refresh = text.lines().find(|l| l.starts_with("refresh_token")).unwrap().to_string();
    // Tokens are stamped in whole seconds: let the renewed one differ from the saved one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // No password this time (none in the environment), no URL: both come from the profile,
    // and so does the namespace.
    let mut cmd = kalam(&home);
    cmd.args(["--no-password", "--profile", "local", "--format", "csv", "-c", "SELECT id FROM t"]);
    let r = run(cmd, "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "id\n7\n");
    // The profile now holds the renewed refresh token; no token was ever printed.
    let renewed = std::fs::read_to_string(home.profiles()).unwrap();
    assert!(!renewed.contains(&saved_refresh[16..]), "the refresh token was not renewed");
    let token = saved_refresh.split('"').nth(1).unwrap();
    assert!(!r.stdout.contains(token) && !r.stderr.contains(token));
    // Signing in as someone else with the profile's server leaves the profile as it was.
    server.sql("CREATE USER 'olga' WITH PASSWORD 'olga-secret-1'");
    let before = std::fs::read_to_string(home.profiles()).unwrap();
    let mut cmd = kalam(&home);
    cmd.args(["--profile", "local", "--user", "olga", "--format", "csv", "-c", "SELECT CURRENT_USER() AS me"])
        .env("KALAM_PASSWORD", "olga-secret-1");
    let r = run(cmd, "");
    assert_eq!(r.stdout, "me\nolga\n", "{r:?}");
    assert_eq!(std::fs::read_to_string(home.profiles()).unwrap(), before, "olga's sign-in reached root's profile");
    // An unknown profile names the known ones.
    let mut cmd = kalam(&home);
    cmd.args(["--profile", "nope", "-c", "SELECT 1"]);
    let r = run(cmd, "");
    assert_eq!(r.code, 3);
    assert!(one_line(&r.stderr).contains("it has: local"), "{}", r.stderr);
}

#[test]
fn a_token_signs_in_and_is_checked() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE USER 'tina' WITH PASSWORD 'tina-secret-1'");
    let token = server.token("tina", "tina-secret-1");
    let mut cmd = server.kalam(&home);
    cmd.args(["--format", "csv", "-c", "SELECT CURRENT_USER() AS me"]).env("KALAM_TOKEN", &token);
    let r = run(cmd, "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "me\ntina\n");
}

#[test]
fn meta_commands_work_in_scripts() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql(
        "CREATE NAMESPACE m; CREATE USER TABLE m.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL); \
         CREATE USER 'alice' WITH PASSWORD 'alice-secret-1'",
    );
    let r = root(&server, &home, &["-c", "\\dn", "-c", "\\dt m", "-c", "\\d m.notes", "-c", "\\du"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(" m         |           1"), "\\dn:\n{}", r.stdout);
    assert!(r.stdout.contains("| notes      | USER"), "\\dt:\n{}", r.stdout);
    assert!(r.stdout.contains("USER table m.notes (schema version 1)"), "\\d:\n{}", r.stdout);
    assert!(r.stdout.contains(" body        |"), "\\d:\n{}", r.stdout);
    assert!(r.stdout.contains(" alice    | user"), "\\du:\n{}", r.stdout);

    // \as runs the statement as alice: the row lands in her partition, not root's.
    let r = root(&server, &home, &["-c", "\\as alice INSERT INTO m.notes (id, body) VALUES (1, 'hers')"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(server.rows("SELECT * FROM m.notes").is_empty());
    let alice = server.sql_as("alice", "alice-secret-1", "SELECT body FROM m.notes");
    assert_eq!(alice["results"][0]["rows"][0][0], "hers");

    // \stats without a table: the server's figures; with one: the table's.
    let r = root(&server, &home, &["-c", "\\stats", "-c", "\\stats m.notes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(" version ") && r.stdout.contains(" sql_requests_total "), "{}", r.stdout);
    assert!(r.stdout.contains("hot_rows"), "{}", r.stdout);

    // A wrong meta-command is a usage error naming it.
    let r = root(&server, &home, &["-c", "\\nope"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("unknown command \\nope"), "{}", r.stderr);
}

#[test]
fn flush_backup_and_restore_are_followed_to_the_end_of_their_jobs() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE NAMESPACE j; CREATE SHARED TABLE j.t (id INT PRIMARY KEY, v TEXT)");
    server.sql("INSERT INTO j.t (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    let r = root(&server, &home, &["-c", "\\flush j.t"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("job_id"), "{}", r.stdout);
    assert!(r.stdout.contains(": 3 rows, 1 file, "), "the job's end is reported: {}", r.stdout);
    let line = r.stdout.lines().find(|l| l.starts_with("Job flush-")).expect("a job line");
    assert!(line.contains(" completed: "), "{line}");
    // By the time kalam exits, the job has finished (it waited).
    let jobs = server.rows("SELECT status FROM system.jobs WHERE job_type = 'flush'");
    assert!(jobs.iter().all(|j| j[0] == "completed"), "{jobs:?}");

    let r = root(
        &server,
        &home,
        &["-c", "BACKUP DATABASE j TO 'b1'; DROP NAMESPACE j CASCADE; RESTORE DATABASE j FROM 'b1'"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.lines().any(|l| l.starts_with("Job backup-") && l.contains(" completed: ")), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l.starts_with("Job restore-") && l.contains(" completed: ")), "{}", r.stdout);
    assert_eq!(server.rows("SELECT count(*) FROM j.t")[0][0], 3);

    // A job that fails makes the script fail: restoring over an existing namespace is refused
    // by the statement itself (409), which is exit 1 as well.
    let r = root(&server, &home, &["-c", "RESTORE DATABASE j FROM 'b1'"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("ALREADY_EXISTS"), "{}", r.stderr);
}

#[test]
fn an_expired_profile_asks_for_the_password_again_and_is_renewed() {
    // Refresh tokens live 1 s here (plus 5 s of clock leeway when the server checks them).
    let server = TestServer::start_with_config("[auth]\nrefresh_token_ttl_secs = 1\n");
    let home = Home::new();
    let r = root(&server, &home, &["--save-profile", "short", "-c", "SELECT 1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let saved = std::fs::read_to_string(home.profiles()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(7));
    // Without a password to fall back on: one line, exit 2. (`-w`: a test must never wait
    // for a terminal it may share with the developer running it.)
    let mut cmd = kalam(&home);
    cmd.args(["-w", "--profile", "short", "-c", "SELECT 1"]);
    let r = run(cmd, "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("profile 'short': the saved sign-in was refused"), "{}", r.stderr);
    assert!(r.stderr.lines().last().unwrap().starts_with("kalam: cannot sign in to "), "{}", r.stderr);
    // With one: signed in, and the profile holds a fresh refresh token.
    let mut cmd = kalam(&home);
    cmd.args(["--profile", "short", "--format", "csv", "-c", "SELECT 1 AS one"]).env("KALAM_PASSWORD", ROOT_PASSWORD);
    let r = run(cmd, "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "one\n1\n");
    assert_ne!(std::fs::read_to_string(home.profiles()).unwrap(), saved, "the profile was not renewed");
}
