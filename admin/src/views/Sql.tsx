import { useEffect, useRef, useState } from 'preact/hooks';
import { type SqlOutcome, sql } from '../api';
import { changesCatalog, refreshCatalog } from '../catalog';
import { SqlEditor } from '../editor';
import { ms } from '../format';
import { clearHistory, history, type HistoryEntry, remember } from '../sqltext';
import { handoff } from '../store';
import { ErrorBox, Page, Result } from '../ui';

const DRAFT_DEFAULT = 'SELECT * FROM system.users';

/** The SQL editor: statements run as the signed-in user; results, timing, history. */
export function SqlView() {
  const [text, setText] = useState(() => {
    const t = handoff.sql ?? history()[0]?.sql ?? DRAFT_DEFAULT;
    handoff.sql = undefined;
    return t;
  });
  const [namespace, setNamespace] = useState('');
  const [outcome, setOutcome] = useState<SqlOutcome | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const [past, setPast] = useState<HistoryEntry[]>(history);
  const editor = useRef<HTMLTextAreaElement>(null);
  useEffect(() => editor.current?.focus(), []);

  /** The selected text, if the editor has a selection (it outlasts the focus, so Run sees it). */
  const selection = () => {
    const ta = editor.current;
    return ta && ta.selectionStart !== ta.selectionEnd ? ta.value.slice(ta.selectionStart, ta.selectionEnd) : null;
  };

  const run = async () => {
    const statement = (selection() ?? text).trim();
    if (!statement || running) return;
    setRunning(true);
    setError(null);
    try {
      const out = await sql(statement, { namespace: namespace.trim() || undefined });
      setOutcome(out);
      setPast(remember(statement, true));
    } catch (e) {
      setOutcome(null);
      setError(e);
      setPast(remember(statement, false));
    } finally {
      setRunning(false);
      // Even a failed request may have run DDL before the statement that failed.
      if (changesCatalog(statement)) refreshCatalog();
    }
  };

  return (
    <Page title="SQL" testid="sql-page">
      <div class="sql-layout">
        <div class="sql-main">
          <SqlEditor value={text} onChange={setText} onRun={() => void run()} namespace={namespace.trim()} inputRef={editor} />
          <div class="toolbar">
            <button type="button" class="primary" data-testid="run" onClick={run} disabled={running}>
              {running ? 'Running…' : 'Run'}
            </button>
            <span class="hint">
              Ctrl+Enter runs (the selection, if any), Ctrl+Space completes. Statements separated by ; run in order;
              an error stops the rest.
            </span>
            <label class="inline">
              namespace
              <input
                class="short"
                value={namespace}
                placeholder="(none)"
                maxLength={64}
                onInput={(e) => setNamespace((e.target as HTMLInputElement).value)}
              />
            </label>
          </div>
          <ErrorBox error={error} />
          {outcome ? (
            <div class="results" data-testid="results">
              <p class="timing" data-testid="timing">
                Time: {ms(outcome.elapsedMs)} (server {ms(outcome.tookMs)})
              </p>
              {outcome.results.map((r, i) => (
                <Result key={i} result={r} index={i} count={outcome.results.length} />
              ))}
            </div>
          ) : null}
        </div>
        <aside class="history" data-testid="history">
          <h2>History</h2>
          {past.length === 0 ? <p class="note">Statements you run appear here (this tab only).</p> : null}
          <ol>
            {past.map((h) => (
              <li key={h.sql}>
                <button
                  type="button"
                  class={h.ok ? 'history-item' : 'history-item failed'}
                  data-testid="history-item"
                  title={`${h.at}${h.ok ? '' : ' (failed)'}`}
                  onClick={() => {
                    setText(h.sql);
                    editor.current?.focus();
                  }}
                >
                  {h.sql}
                </button>
              </li>
            ))}
          </ol>
          {past.length ? (
            <button
              type="button"
              class="link"
              onClick={() => {
                clearHistory();
                setPast([]);
              }}
            >
              Clear history
            </button>
          ) : null}
        </aside>
      </div>
    </Page>
  );
}
