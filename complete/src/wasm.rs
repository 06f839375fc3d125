//! The admin console's binding (wasm-bindgen; built by scripts/build-admin.sh): the console
//! hands over its catalog once per change, as flat lists of strings, and asks for completions
//! at each keystroke, answered as JSON. Offsets cross as JavaScript counts them, in UTF-16
//! code units. The catalog does not come as JSON: a JSON reader was a fifth of the module's
//! gzip size.

use crate::{Catalog, Column, Completion, Table, complete};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A catalog ready to complete against: made when the console's catalog changes, not per
/// keystroke.
#[wasm_bindgen]
pub struct CompletionCatalog {
    catalog: Catalog,
}

/// What `complete` answers, offsets in UTF-16 code units.
#[derive(Serialize)]
struct Answer<'a> {
    from: usize,
    to: usize,
    items: &'a [Completion],
}

#[wasm_bindgen]
impl CompletionCatalog {
    /// The console's catalog: its namespaces; its tables as (namespace, name, type) one after
    /// the other; how many columns each table has; the columns, table by table, as (name,
    /// type). Fails where the lists do not fit together.
    #[wasm_bindgen(constructor)]
    pub fn new(
        namespaces: Vec<String>,
        tables: Vec<String>,
        column_counts: Vec<u32>,
        columns: Vec<String>,
    ) -> Result<CompletionCatalog, JsError> {
        // Saturating: counts that add up past the address space cannot fit the lists either.
        let wanted = column_counts.iter().map(|&n| (n as usize).saturating_mul(2)).fold(0, usize::saturating_add);
        if tables.len() != column_counts.len() * 3 || columns.len() != wanted {
            return Err(JsError::new("the catalog: its lists do not fit together"));
        }
        let mut columns = columns.into_iter();
        let mut tables = tables.into_iter();
        let mut read = Vec::with_capacity(column_counts.len());
        for count in column_counts {
            let mut next = || tables.next().unwrap_or_default();
            let (namespace, name, kind) = (next(), next(), next());
            let mut next = || columns.next().unwrap_or_default();
            let columns = (0..count).map(|_| Column { name: next(), data_type: next() }).collect();
            read.push(Table { namespace, name, kind, columns });
        }
        Ok(CompletionCatalog { catalog: Catalog { namespaces, tables: read } })
    }

    /// The completions at `caret` in `text` as JSON (`{from, to, items: [{text, kind,
    /// detail}]}`, at most `limit` items), or none where nothing is completed (see
    /// `crate::complete`); all items without a limit.
    pub fn complete(
        &self,
        text: &str,
        caret: u32,
        session: Option<String>,
        explicit: bool,
        limit: Option<u32>,
    ) -> Result<Option<String>, JsError> {
        let caret = byte_offset(text, caret as usize);
        let Some(found) = complete(&self.catalog, text, caret, session.as_deref(), explicit) else {
            return Ok(None);
        };
        let shown = limit.map_or(found.items.len(), |limit| found.items.len().min(limit as usize));
        let items = &found.items[..shown];
        let answer = Answer { from: utf16_offset(text, found.from), to: utf16_offset(text, found.to), items };
        serde_json::to_string(&answer).map(Some).map_err(|e| JsError::new(&e.to_string()))
    }
}

/// The byte offset in `text` of the UTF-16 offset `units` (the end if it is past it).
fn byte_offset(text: &str, units: usize) -> usize {
    let mut counted = 0;
    for (at, c) in text.char_indices() {
        if counted >= units {
            return at;
        }
        counted += c.len_utf16();
    }
    text.len()
}

/// The UTF-16 offset of the byte offset `at` (a character boundary) in `text`.
fn utf16_offset(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).encode_utf16().count()
}
