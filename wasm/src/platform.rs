//! The JavaScript platform for the sync driver: the global `WebSocket`, `setTimeout`,
//! `Date.now()` and `crypto.getRandomValues()`. Works in browsers, workers and Node.js
//! (where the SDK installs the `ws` package as `globalThis.WebSocket` if there is none).

use futures::channel::mpsc::UnboundedSender;
use futures::future::LocalBoxFuture;
use kalamdb_client_core::sync::platform::{Platform, Socket, SocketEvent};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: f64) -> JsValue;

    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// [`Platform`] over the JavaScript globals.
pub struct JsPlatform;

/// A browser WebSocket plus the callbacks kept alive for it.
struct JsSocket {
    ws: WebSocket,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Socket for JsSocket {
    fn send(&self, text: String) -> Result<(), String> {
        self.ws.send_with_str(&text).map_err(|e| format!("{e:?}"))
    }

    fn close(&self) {
        let _ = self.ws.close();
    }
}

impl Drop for JsSocket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
    }
}

impl Platform for JsPlatform {
    fn connect(
        &self,
        url: &str,
        conn: u64,
        events: UnboundedSender<SocketEvent>,
    ) -> LocalBoxFuture<'static, Result<Box<dyn Socket>, String>> {
        let url = url.to_string();
        Box::pin(async move {
            let ws = WebSocket::new(&url).map_err(|e| format!("cannot open {url}: {e:?}"))?;
            // Resolves with Ok on open, Err if it closes first.
            let (open_tx, open_rx) = futures::channel::oneshot::channel::<Result<(), String>>();
            let open_tx = Rc::new(RefCell::new(Some(open_tx)));

            let tx = open_tx.clone();
            let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(Ok(()));
                }
            });
            let ev = events.clone();
            let on_message = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                if let Some(text) = e.unchecked_into::<MessageEvent>().data().as_string() {
                    let _ = ev.unbounded_send(SocketEvent::Frame { conn, text });
                }
            });
            let (ev, tx) = (events.clone(), open_tx.clone());
            let on_close = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                let e: CloseEvent = e.unchecked_into();
                let reason = if e.reason().is_empty() { format!("closed ({})", e.code()) } else { e.reason() };
                match tx.borrow_mut().take() {
                    Some(tx) => drop(tx.send(Err(reason))),
                    None => drop(ev.unbounded_send(SocketEvent::Closed { conn, reason: Some(reason) })),
                }
            });
            // Errors are always followed by a close event, which reports them.
            let on_error = Closure::<dyn FnMut(JsValue)>::new(|_| {});
            ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            let socket = JsSocket { ws, _callbacks: vec![on_open, on_message, on_close, on_error] };
            match open_rx.await {
                Ok(Ok(())) => Ok(Box::new(socket) as Box<dyn Socket>),
                Ok(Err(reason)) => Err(reason),
                Err(_) => Err("socket dropped before opening".into()),
            }
        })
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(task);
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        Box::pin(sleep(ms))
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn random_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        get_random_values(&mut b);
        u32::from_le_bytes(b)
    }
}

/// Resolves after `ms` milliseconds (`setTimeout`).
pub async fn sleep(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms as f64);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
