//! The admin console's binding (wasm-bindgen; built by scripts/build-admin.sh): the console
//! hands over its catalog once per change, as JSON, and asks for completions at each
//! keystroke. Offsets cross as JavaScript counts them, in UTF-16 code units.

use crate::{Catalog, Completion, complete};
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
    /// Reads the console's catalog (its `Catalog`, as JSON).
    #[wasm_bindgen(constructor)]
    pub fn new(catalog: &str) -> Result<CompletionCatalog, JsError> {
        let catalog = serde_json::from_str(catalog).map_err(|e| JsError::new(&format!("the catalog: {e}")))?;
        Ok(CompletionCatalog { catalog })
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
