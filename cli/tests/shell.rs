//! The interactive shell through a pseudo-terminal (rexpect), against the real server:
//! completion, multi-line input, `\d`, `\live` with a change from another client, Ctrl-C,
//! the password prompt and the history file.

mod common;

use common::{Home, ROOT_PASSWORD, TIMEOUT, TestServer};
use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};

/// `kalam` in a terminal, signed in as root; waits for the first prompt.
fn shell(server: &TestServer, home: &Home) -> (PtySession, String) {
    let mut cmd = server.kalam(home);
    cmd.args(["--user", "root"]).env("KALAM_PASSWORD", ROOT_PASSWORD);
    let mut p = spawn(cmd);
    let prompt = format!("root@{}> ", server.host());
    p.exp_string(&prompt).expect("the first prompt");
    (p, prompt)
}

/// `cmd` in a terminal that echoes what is typed, as a user's terminal does (rexpect turns
/// echo off for the programs it starts; `stty echo` turns it back on before `kalam` runs),
/// so a password that is not hidden would show.
fn spawn_echoing(cmd: std::process::Command) -> PtySession {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg("stty echo && exec \"$0\" \"$@\"").arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => sh.env(key, v),
            None => sh.env_remove(key),
        };
    }
    spawn(sh)
}

fn spawn(cmd: std::process::Command) -> PtySession {
    let options = Options::new().timeout_ms(Some(TIMEOUT.as_millis() as u64)).strip_ansi_escape_codes(true);
    spawn_with_options(cmd, options).expect("start kalam in a pty")
}

/// Types `text` and presses Enter (a terminal sends CR).
fn enter(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
}

fn quit(mut p: PtySession) {
    enter(&mut p, "\\q");
    p.exp_eof().expect("kalam exits on \\q");
}

/// Types `typed`, presses Tab and waits for the line to show `shown` (`what` says what failed).
fn tab(p: &mut PtySession, typed: &str, shown: &str, what: &str) {
    p.send(typed).unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.exp_string(shown).expect(what);
}

#[test]
fn tab_completes_a_table_name_from_the_catalog() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE NAMESPACE clitest; CREATE USER TABLE clitest.todos (id BIGINT PRIMARY KEY, title TEXT)");
    server.sql("INSERT INTO clitest.todos (id, title) VALUES (1, 'milk')");
    let (mut p, prompt) = shell(&server, &home);
    // The line is redrawn with the full name; running it proves the name is right.
    tab(&mut p, "SELECT title FROM clitest.tod", "clitest.todos", "Tab completes the table name");
    enter(&mut p, ";");
    let out = p.exp_string("(1 row)").expect("the completed statement runs");
    assert!(out.contains("milk"), "{out}");
    assert!(!out.contains("ERROR"), "{out}");
    p.exp_string(&prompt).unwrap();
    // A column of the table named in the statement.
    tab(&mut p, "SELECT tit", "SELECT title", "Tab completes a column");
    enter(&mut p, " FROM clitest.todos;");
    p.exp_string("(1 row)").unwrap();
    p.exp_string(&prompt).unwrap();
    // In a quoted name, with the caret before its closing quote (one Left): the name, quoted,
    // replaces it whole; Ctrl-E goes to the end of the line.
    tab(&mut p, "SELECT \"ti\"\x1b[D", "\"title\"", "Tab completes a quoted column");
    enter(&mut p, "\x05 FROM clitest.todos;");
    let out = p.exp_string("(1 row)").expect("the completed statement runs");
    assert!(!out.contains("ERROR"), "{out}");
    p.exp_string(&prompt).unwrap();
    // A table another client makes completes once the catalog is over 5 s old and a command
    // has run (which reads it again in the background).
    server.sql("CREATE USER TABLE clitest.tags (id BIGINT PRIMARY KEY)");
    std::thread::sleep(std::time::Duration::from_millis(5_200));
    enter(&mut p, "SELECT 1 AS one;");
    p.exp_string(&prompt).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    tab(&mut p, "SELECT id FROM clitest.tag", "clitest.tags", "Tab completes a table made elsewhere");
    enter(&mut p, ";");
    p.exp_string("(0 rows)").expect("the completed statement runs");
    p.exp_string(&prompt).unwrap();
    quit(p);
}

#[test]
fn a_statement_spans_lines_until_its_semicolon_and_ctrl_c_discards_a_line() {
    let server = TestServer::start();
    let home = Home::new();
    let (mut p, prompt) = shell(&server, &home);
    enter(&mut p, "SELECT");
    enter(&mut p, "  41 + 1");
    enter(&mut p, "  AS answer");
    // Nothing ran yet: the statement has no ';'.
    enter(&mut p, ";");
    let out = p.exp_string("(1 row)").expect("the statement runs at its ';'");
    assert!(!out.contains("ERROR"), "ran before the ';': {out}");
    assert!(out.contains("answer") && out.contains("42"), "{out}");
    p.exp_string("Time: ").expect("timing is on in the shell");
    p.exp_string(&prompt).unwrap();
    // Ctrl-C at the prompt drops what was typed, and the shell goes on.
    p.send("SELECT nonsense from nowhere").unwrap();
    p.flush().unwrap();
    p.exp_string("nowhere").unwrap();
    p.send_control('c').unwrap();
    p.exp_string(&prompt).expect("a fresh prompt after Ctrl-C");
    enter(&mut p, "SELECT 'still here' AS s;");
    let out = p.exp_string("(1 row)").unwrap();
    assert!(!out.contains("ERROR"), "the discarded line ran: {out}");
    assert!(out.contains("still here"), "{out}");
    // An error is one line and the shell stays.
    enter(&mut p, "SELECT * FROM nowhere.nothing;");
    p.exp_string("ERROR: ").unwrap();
    p.exp_string(&prompt).unwrap();
    quit(p);
}

/// Ctrl-C while a statement runs gives the prompt back at once (the server's answer is not
/// waited for), and the shell goes on.
#[test]
fn ctrl_c_cancels_a_running_statement() {
    // Every scan of a table's partition waits 5 s after listing its files.
    let server = TestServer::start_with("", &[("FAILPOINTS", "scan:after_listing=sleep(5000)")]);
    let home = Home::new();
    server.sql("CREATE NAMESPACE slow; CREATE SHARED TABLE slow.t (id BIGINT PRIMARY KEY)");
    let (mut p, prompt) = shell(&server, &home);
    enter(&mut p, "SELECT count(*) FROM slow.t;");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    p.send_control('c').unwrap();
    p.exp_string("Cancelled.").expect("Ctrl-C cancels the statement");
    p.exp_string(&prompt).expect("a fresh prompt");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
    enter(&mut p, "SELECT 'next' AS s;");
    let out = p.exp_string("(1 row)").unwrap();
    assert!(out.contains("next") && !out.contains("ERROR"), "{out}");
    quit(p);
}

/// Over HTTPS and WSS with a server certificate the system trusts (`SSL_CERT_FILE`):
/// statements and a live query work as over plain HTTP; without trusting it, one line and
/// exit 2.
#[test]
fn https_and_wss_to_a_server_with_a_certificate() {
    let server = TestServer::start_tls();
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let home = Home::new();
    server.sql("CREATE NAMESPACE sec; CREATE USER TABLE sec.notes (id BIGINT PRIMARY KEY, body TEXT)");
    let (mut p, prompt) = shell(&server, &home);
    enter(&mut p, "\\live SELECT id, body FROM sec.notes");
    p.exp_string("Waiting for changes").expect("the live query starts over WSS");
    server.sql("INSERT INTO sec.notes (id, body) VALUES (1, 'over tls')");
    p.exp_string("INSERT id=1, body='over tls'").expect("the change arrives over WSS");
    p.send_control('c').unwrap();
    p.exp_string("Live query stopped.").unwrap();
    p.exp_string(&prompt).unwrap();
    quit(p);

    let mut untrusting = server.kalam(&home);
    untrusting
        .env_remove("SSL_CERT_FILE")
        .args(["--user", "root", "-c", "SELECT 1"])
        .env("KALAM_PASSWORD", ROOT_PASSWORD);
    let r = common::run(untrusting, "");
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
}

#[test]
fn describe_lists_a_tables_columns() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql(
        "CREATE NAMESPACE d; CREATE USER TABLE d.items (id BIGINT PRIMARY KEY, label TEXT NOT NULL, qty INT DEFAULT 1)",
    );
    let (mut p, prompt) = shell(&server, &home);
    enter(&mut p, "\\d d.items");
    let out = p.exp_string("USER table d.items (schema version 1)").expect("\\d describes the table");
    for column in ["column_name", "label", "qty", "_updated"] {
        assert!(out.contains(column), "{column} missing in:\n{out}");
    }
    p.exp_string(&prompt).unwrap();
    quit(p);
}

#[test]
fn live_shows_a_change_another_client_makes_until_ctrl_c() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE NAMESPACE lv; CREATE USER TABLE lv.todos (id BIGINT PRIMARY KEY, title TEXT)");
    server.sql("INSERT INTO lv.todos (id, title) VALUES (1, 'first')");
    let (mut p, prompt) = shell(&server, &home);
    enter(&mut p, "\\live SELECT id, title FROM lv.todos");
    let out = p.exp_string("Waiting for changes").expect("the live query starts");
    assert!(out.contains("first") && out.contains("(1 row)"), "the initial rows: {out}");
    // Another client (plain HTTP, as the same user) writes.
    server.sql("INSERT INTO lv.todos (id, title) VALUES (2, 'from another client')");
    p.exp_string("INSERT id=2, title='from another client'").expect("the change arrives");
    server.sql("UPDATE lv.todos SET title = 'renamed' WHERE id = 1");
    p.exp_string("UPDATE id=1: title 'first' -> 'renamed'").expect("the update arrives");
    // The subscription is registered on the server while it runs...
    assert_eq!(server.rows("SELECT count(*) FROM system.live_queries")[0][0], 1);
    p.send_control('c').unwrap();
    p.exp_string("Live query stopped.").expect("Ctrl-C stops the live query");
    p.exp_string(&prompt).expect("and returns to the prompt");
    enter(&mut p, "SELECT count(*) AS n FROM lv.todos;");
    p.exp_string("(1 row)").expect("the shell still works");
    // ...and gone once it stopped.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while server.rows("SELECT count(*) FROM system.live_queries")[0][0] != 0 {
        assert!(std::time::Instant::now() < deadline, "the subscription outlived \\live");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    quit(p);
}

#[test]
fn the_password_is_asked_without_echo_and_secrets_stay_out_of_the_history() {
    let server = TestServer::start();
    let home = Home::new();
    let mut cmd = server.kalam(&home);
    cmd.args(["--user", "root"]);
    let mut p = spawn_echoing(cmd);
    p.exp_string("Password for root: ").expect("the password prompt");
    enter(&mut p, ROOT_PASSWORD);
    let prompt = format!("root@{}> ", server.host());
    let out = p.exp_string(&prompt).expect("signed in");
    assert!(!out.contains(ROOT_PASSWORD), "the password was echoed: {out}");
    enter(&mut p, "CREATE USER 'bob' WITH PASSWORD 'bob-secret-123';");
    p.exp_string(&prompt).unwrap();
    enter(&mut p, "SELECT 'kept' AS k;");
    p.exp_string("(1 row)").unwrap();
    p.exp_string(&prompt).unwrap();
    quit(p);
    let history = std::fs::read_to_string(home.history()).expect("the history file");
    assert!(history.contains("SELECT 'kept' AS k;"), "{history}");
    assert!(!history.contains("bob-secret-123"), "a password reached the history: {history}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.history()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the history is private");
    }
}

#[test]
fn a_wrong_password_in_the_terminal_is_one_line() {
    let server = TestServer::start();
    let home = Home::new();
    let mut cmd = server.kalam(&home);
    cmd.args(["--user", "root"]);
    let mut p = spawn_echoing(cmd);
    p.exp_string("Password for root: ").unwrap();
    enter(&mut p, "wrong-password");
    let rest = p.exp_eof().expect("kalam exits");
    let lines: Vec<&str> = rest.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{rest}");
    assert!(lines[0].starts_with(&format!("kalam: cannot sign in to {} as root: ", server.url)), "{rest}");
    assert!(!rest.contains("panicked") && !rest.contains("wrong-password"), "{rest}");
}

#[test]
fn flush_backup_and_restore_show_progress_against_a_total() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE NAMESPACE pg; CREATE SHARED TABLE pg.t (id INT PRIMARY KEY, v TEXT)");
    server.sql("INSERT INTO pg.t (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    let (mut p, prompt) = shell(&server, &home);
    // The bar counts toward the table's hot rows, read before the flush.
    enter(&mut p, "\\flush pg.t");
    p.exp_string("/3 rows").expect("a progress bar out of the 3 hot rows");
    let out = p.exp_string(&prompt).unwrap();
    assert!(out.contains("completed: 3 rows, 1 file"), "{out}");
    // BACKUP counts every row version of the namespace; RESTORE the backup's files.
    enter(&mut p, "BACKUP DATABASE pg TO 'pg-1';");
    p.exp_string("/3 rows").expect("backup progress out of 3 rows");
    p.exp_string("completed").unwrap();
    p.exp_string(&prompt).unwrap();
    enter(&mut p, "RESTORE DATABASE pg_copy FROM 'pg-1';");
    p.exp_string("/1 files").expect("restore progress out of the backup's 1 file");
    p.exp_string("completed").unwrap();
    p.exp_string(&prompt).unwrap();
    quit(p);
    assert_eq!(server.rows("SELECT count(*) FROM pg_copy.t")[0][0], 3);
}

#[test]
fn expired_tokens_are_renewed_for_statements_and_live_queries() {
    // Access tokens live 2 s (5 s of clock leeway on HTTP); the WebSocket checks expiry every second.
    let server = TestServer::start_with_config("[auth]\naccess_token_ttl_secs = 2\n[live]\nheartbeat_secs = 1\n");
    let home = Home::new();
    server.sql("CREATE NAMESPACE ex; CREATE USER TABLE ex.t (id BIGINT PRIMARY KEY, v TEXT)");
    let (mut p, prompt) = shell(&server, &home);
    enter(&mut p, "\\live SELECT id, v FROM ex.t");
    p.exp_string("Waiting for changes").unwrap();
    // Well past the first token's expiry: the live query is still there and delivers.
    std::thread::sleep(std::time::Duration::from_secs(8));
    server.sql("INSERT INTO ex.t (id, v) VALUES (1, 'late')");
    p.exp_string("INSERT id=1, v='late'").expect("the live query outlived its first token");
    p.send_control('c').unwrap();
    p.exp_string(&prompt).unwrap();
    // A statement long after the token the shell started with expired.
    enter(&mut p, "SELECT v FROM ex.t;");
    let out = p.exp_string("(1 row)").expect("the statement ran with a renewed token");
    assert!(!out.contains("ERROR") && !out.contains("kalam:"), "{out}");
    quit(p);
}

#[test]
fn changing_ones_own_password_asks_for_the_new_one_and_goes_on() {
    let server = TestServer::start();
    let home = Home::new();
    server.sql("CREATE USER 'bob' WITH PASSWORD 'bob-password-1'");
    let mut cmd = server.kalam(&home);
    cmd.args(["--user", "bob"]).env("KALAM_PASSWORD", "bob-password-1");
    let mut p = spawn_echoing(cmd);
    let prompt = format!("bob@{}> ", server.host());
    p.exp_string(&prompt).expect("signed in");
    // The change revokes every token of bob's, the shell's included.
    enter(&mut p, "ALTER USER 'bob' SET PASSWORD 'bob-password-2';");
    p.exp_string(&prompt).unwrap();
    enter(&mut p, "SELECT 'still here' AS s;");
    p.exp_string("sign in again").expect("the shell says why it asks");
    p.exp_string("Password for bob: ").expect("and asks for the new password");
    enter(&mut p, "bob-password-2");
    let out = p.exp_string("(1 row)").expect("the statement runs once signed in again");
    assert!(out.contains("still here") && !out.contains("bob-password-2"), "{out}");
    p.exp_string(&prompt).unwrap();
    quit(p);
}
