// The SQL editor: a textarea whose text is transparent over a <pre> that shows the same text
// coloured token by token (the textarea keeps typing, selection, undo and the caret; the
// <pre> follows its scrolling), and a completion list at the caret.
import type { RefObject } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { refreshIfStale, useCatalog } from './catalog';
import { type Complete, type Completion, type Completions, loadCompletion } from './complete';
import { type Token, tokenize } from './sqlsyntax';

/** The completion list while it is open. */
interface Open extends Completions {
  /** The entry Enter or Tab would take. */
  index: number;
  /** Opened with Ctrl+Space: it stays open for an empty word. */
  explicit: boolean;
}

/** Completion, once loaded (see loadCompletion). */
let complete: Complete | null = null;

/** Typing one of these (or deleting while the list is open) looks for completions. */
const WORD_CHAR = /^[\w.]$/;

/**
 * An SQL text area with highlighting and completion of keywords and the catalog's names.
 * Ctrl/Cmd+Enter calls `onRun`; Ctrl+Space opens the completion list, which also opens while
 * a name is typed (two characters, or after `ns.`): arrows move in it, Enter or Tab takes an
 * entry, Esc closes it.
 */
export function SqlEditor(props: {
  value: string;
  onChange: (text: string) => void;
  onRun: () => void;
  /** The default namespace: its tables complete without it. */
  namespace?: string;
  inputRef: RefObject<HTMLTextAreaElement | null>;
}) {
  const input = props.inputRef;
  const highlight = useRef<HTMLPreElement>(null);
  const gutter = useRef<HTMLPreElement>(null);
  const list = useRef<HTMLUListElement>(null);
  const catalog = useCatalog();
  // The catalog as it is when a completion that waited for loading runs.
  const latestCatalog = useRef(catalog);
  latestCatalog.current = catalog;
  const [open, setOpen] = useState<Open | null>(null);
  /** Where the caret is while the editor has the focus and nothing is selected. */
  const [caret, setCaret] = useState<number | null>(null);
  const trackCaret = () => {
    const ta = input.current;
    setCaret(ta && document.activeElement === ta && ta.selectionStart === ta.selectionEnd ? ta.selectionEnd : null);
  };

  /**
   * Looks for completions at the caret; `explicit` is Ctrl+Space. The first call loads
   * completion, then looks at the caret as it is by then.
   */
  const suggest = (explicit: boolean) => {
    if (!complete) {
      // Completion is a help: without it (the module failed to load) the editor still edits.
      loadCompletion().then(
        (loaded) => {
          complete = loaded;
          suggest(explicit);
        },
        () => setOpen(null),
      );
      return;
    }
    const ta = input.current;
    if (!ta) return;
    const found = complete(ta.value, ta.selectionEnd, latestCatalog.current, props.namespace || undefined, explicit);
    if (!found?.items.length || ta.selectionStart !== ta.selectionEnd) return setOpen(null);
    const word = ta.value.slice(found.from, ta.selectionEnd);
    // Typing opens the list from the second character of a name, or right after `ns.`.
    if (!explicit && !open && !word.includes('.') && word.length < 2) return;
    setOpen({ ...found, index: 0, explicit });
  };

  const accept = (item: Completion) => {
    const ta = input.current;
    if (!ta || !open) return;
    ta.focus();
    ta.setSelectionRange(open.from, open.to);
    // As typed text, so that undo takes it back; the input event updates the value.
    if (!document.execCommand('insertText', false, item.text)) {
      ta.setRangeText(item.text, open.from, open.to, 'end');
      props.onChange(ta.value);
    }
    setOpen(null);
    // A namespace goes on with its tables.
    if (item.kind === 'namespace' && item.text.endsWith('.')) suggest(false);
  };

  // New names (the catalog arrived or was read again after DDL) update an open list.
  useEffect(() => {
    if (open) suggest(open.explicit);
  }, [catalog]);

  /** Keeps the coloured text under the textarea's, and the list at the word's start. */
  const follow = () => {
    const ta = input.current;
    const pre = highlight.current;
    if (!ta || !pre) return;
    pre.scrollTop = ta.scrollTop;
    pre.scrollLeft = ta.scrollLeft;
    if (gutter.current) gutter.current.scrollTop = ta.scrollTop;
    const ul = list.current;
    if (!ul || !open) return;
    const at = caretBox(pre, open.from);
    const box = pre.getBoundingClientRect();
    ul.style.left = `${Math.max(0, Math.min(at.left - box.left, pre.clientWidth - ul.offsetWidth))}px`;
    ul.style.top = `${at.bottom - box.top + 2}px`;
  };
  useLayoutEffect(follow);
  useLayoutEffect(() => {
    list.current?.querySelector('[aria-selected=true]')?.scrollIntoView({ block: 'nearest' });
  }, [open?.index]);

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.isComposing) return;
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      setOpen(null);
      props.onRun();
    } else if (e.code === 'Space' && e.ctrlKey) {
      e.preventDefault();
      suggest(true);
    } else if (open) {
      const move = (by: number) => {
        e.preventDefault();
        setOpen({ ...open, index: (open.index + by + open.items.length) % open.items.length });
      };
      const plain = !(e.ctrlKey || e.metaKey || e.altKey || e.shiftKey);
      if (e.key === 'ArrowDown') move(1);
      else if (e.key === 'ArrowUp') move(-1);
      else if ((e.key === 'Enter' || e.key === 'Tab') && plain) {
        e.preventDefault();
        accept(open.items[open.index]);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        setOpen(null);
      } else if (['ArrowLeft', 'ArrowRight', 'Home', 'End', 'PageUp', 'PageDown', 'Tab', 'Enter'].includes(e.key)) setOpen(null);
    }
  };

  const onInput = (e: InputEvent) => {
    props.onChange((e.currentTarget as HTMLTextAreaElement).value);
    trackCaret();
    // Names made elsewhere while the editor kept the focus: typing reads a stale catalog again.
    refreshIfStale();
    const typed = e.inputType === 'insertText' && e.data !== null && WORD_CHAR.test(e.data);
    if (typed || (open && e.inputType.startsWith('delete'))) suggest(open?.explicit ?? false);
    else setOpen(null);
  };

  const active = open ? `sql-completion-${open.index}` : undefined;
  const lines = props.value.split('\n').length;
  return (
    // data-tables: how many tables the completion knows (the tests wait for the catalog).
    // --gutter: the width of the widest line number.
    <div
      class="code-editor"
      data-tables={catalog.tables.length}
      style={{ '--gutter': `${Math.max(2, String(lines).length)}ch` }}
    >
      <pre class="code-gutter" ref={gutter} aria-hidden="true" data-testid="sql-gutter">
        {Array.from({ length: lines }, (_, i) => i + 1).join('\n')}
      </pre>
      <pre class="code-highlight" ref={highlight} aria-hidden="true" data-testid="sql-highlight">
        {highlighted(props.value, caret)}
      </pre>
      <textarea
        ref={input}
        class="code-input"
        data-testid="sql-editor"
        spellcheck={false}
        autocapitalize="off"
        autocomplete="off"
        wrap="off"
        value={props.value}
        rows={8}
        aria-label="SQL"
        aria-autocomplete="list"
        aria-controls={open ? 'sql-completions' : undefined}
        aria-activedescendant={active}
        onInput={onInput}
        onFocus={() => {
          refreshIfStale();
          trackCaret();
        }}
        onKeyDown={onKeyDown}
        onKeyUp={trackCaret}
        onScroll={follow}
        onClick={() => {
          setOpen(null);
          trackCaret();
        }}
        onBlur={() => {
          setOpen(null);
          setCaret(null);
        }}
      />
      {open ? (
        <ul class="completions" id="sql-completions" role="listbox" ref={list} data-testid="completions" aria-label="Completions">
          {open.items.map((item, i) => (
            <li
              key={`${item.kind}:${item.text}`}
              id={`sql-completion-${i}`}
              role="option"
              aria-selected={i === open.index}
              data-testid="completion"
              data-kind={item.kind}
              // Keeps the focus (and the caret) in the textarea.
              onMouseDown={(e) => {
                e.preventDefault();
                accept(item);
              }}
            >
              <span class="completion-text">{item.text}</span>
              <span class="completion-detail">{item.detail}</span>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/**
 * The text as coloured spans, the bracket at the caret and its partner marked; a last newline
 * so that an empty last line has its height.
 */
function highlighted(text: string, caret: number | null) {
  const tokens = tokenize(text);
  const pair = caret === null ? [] : matchingBrackets(tokens, caret);
  return [
    ...tokens.map((t, i) => {
      if (t.kind === 'space') return t.text;
      const match = pair.includes(i) ? ' tok-match' : '';
      return (
        <span class={`tok-${t.kind}${match}`} data-testid={match ? 'bracket-match' : undefined}>
          {t.text}
        </span>
      );
    }),
    '\n',
  ];
}

/**
 * The indices of the bracket just before the caret (else just after it) and of its partner;
 * none if there is no bracket there or it has no partner. Brackets in strings and comments
 * are tokens of those, so they do not count.
 */
function matchingBrackets(tokens: Token[], caret: number): number[] {
  const isBracket = (t: Token | undefined) => t?.kind === 'operator' && (t.text === '(' || t.text === ')');
  let at = tokens.findIndex((t) => t.end === caret && isBracket(t));
  if (at < 0) at = tokens.findIndex((t) => t.start === caret && isBracket(t));
  if (at < 0) return [];
  const step = tokens[at].text === '(' ? 1 : -1;
  let depth = 0;
  for (let i = at; i >= 0 && i < tokens.length; i += step) {
    if (!isBracket(tokens[i])) continue;
    depth += tokens[i].text === tokens[at].text ? 1 : -1;
    if (depth === 0) return [at, i];
  }
  return [];
}

/**
 * Where text inserted at `offset` of the <pre>'s text starts (viewport coordinates): the left
 * of the character there, else the right of the one before it on its line, else (an empty
 * line) the line's start.
 */
function caretBox(pre: HTMLPreElement, offset: number): { left: number; bottom: number } {
  const text = pre.textContent ?? '';
  if (text[offset] !== undefined && text[offset] !== '\n') {
    const r = textRange(pre, offset).getBoundingClientRect();
    return { left: r.left, bottom: r.bottom };
  }
  if (offset > 0 && text[offset - 1] !== '\n') {
    const r = textRange(pre, offset - 1).getBoundingClientRect();
    return { left: r.right, bottom: r.bottom };
  }
  const style = getComputedStyle(pre);
  const box = pre.getBoundingClientRect();
  const lines = text.slice(0, offset).split('\n').length;
  return {
    left: box.left + parseFloat(style.paddingLeft) - pre.scrollLeft,
    bottom: box.top + parseFloat(style.paddingTop) + lines * parseFloat(style.lineHeight) - pre.scrollTop,
  };
}

/** A range over the one character at `offset` of the element's text. */
function textRange(root: Node, offset: number): Range {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  let left = offset;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const length = node.textContent?.length ?? 0;
    if (left < length) {
      range.setStart(node, left);
      range.setEnd(node, left + 1);
      break;
    }
    left -= length;
  }
  return range;
}
