import { useEffect, useRef, useState } from 'react';
import * as Y from 'yjs';
import { useKalam } from '@kalamdb/client/react';
import { TABLE } from './App';

/**
 * Edits a todo's CRDT_TEXT `body` through a Yjs document: every edit is applied to the local
 * Y.Doc as a minimal delete + insert and sent as a Yjs update, so edits made concurrently on
 * other devices (also offline) merge instead of overwriting each other.
 *
 * `text` is the body as the live query shows it; when it changes (a merge from elsewhere), the
 * editor merges the replica's document state into its own.
 */
export function NotesEditor({ id, text }: { id: string; text: string | null }) {
  const client = useKalam();
  const docRef = useRef<Y.Doc | null>(null);
  const [value, setValue] = useState(text ?? '');
  const [ready, setReady] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const sendTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  // Start from the replica's document (its full Yjs state).
  useEffect(() => {
    let cancelled = false;
    const doc = new Y.Doc();
    docRef.current = doc;
    setReady(false);
    client
      .crdt(TABLE, id, 'body')
      .then((cell) => {
        if (cancelled) return;
        if (cell?.state) Y.applyUpdate(doc, cell.state);
        else if (cell?.text) {
          // A text without a document (not yet confirmed by the server): editing it now would
          // duplicate the text on merge, so wait for the server's document.
          setProblem('notes become editable once this todo reached the server');
          return;
        }
        setValue(doc.getText('text').toString());
        setProblem(null);
        setReady(true);
      })
      .catch((e) => !cancelled && setProblem(`notes unavailable: ${e.message ?? e}`));
    return () => {
      cancelled = true;
      flush();
      doc.destroy();
      docRef.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, id]);

  // Someone else's edit arrived (the live row's text differs): merge the replica's state.
  useEffect(() => {
    const doc = docRef.current;
    if (!ready || !doc || text === null || text === doc.getText('text').toString()) return;
    let cancelled = false;
    client
      .crdt(TABLE, id, 'body')
      .then((cell) => {
        if (cancelled || !cell?.state || docRef.current !== doc) return;
        Y.applyUpdate(doc, cell.state);
        setValue(doc.getText('text').toString());
      })
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, [client, id, text, ready]);

  function flush() {
    if (sendTimer.current === null) return;
    clearTimeout(sendTimer.current);
    sendTimer.current = null;
    const doc = docRef.current;
    if (doc) void client.table(TABLE).editText(id, 'body', Y.encodeStateAsUpdate(doc));
  }

  function onChange(next: string) {
    const doc = docRef.current;
    if (!doc) return;
    const ytext = doc.getText('text');
    const cur = ytext.toString();
    let start = 0;
    while (start < cur.length && start < next.length && cur[start] === next[start]) start++;
    let endCur = cur.length;
    let endNext = next.length;
    while (endCur > start && endNext > start && cur[endCur - 1] === next[endNext - 1]) {
      endCur--;
      endNext--;
    }
    doc.transact(() => {
      if (endCur > start) ytext.delete(start, endCur - start);
      if (endNext > start) ytext.insert(start, next.slice(start, endNext));
    });
    setValue(ytext.toString());
    // Batch keystrokes: one mutation per pause in typing.
    if (sendTimer.current !== null) clearTimeout(sendTimer.current);
    sendTimer.current = setTimeout(flush, 250);
  }

  if (problem) return <p className="muted">{problem}</p>;
  return (
    <textarea
      data-testid="notes"
      placeholder="Notes (merged across devices)"
      value={value}
      disabled={!ready}
      onChange={(e) => onChange(e.target.value)}
      onBlur={flush}
    />
  );
}
