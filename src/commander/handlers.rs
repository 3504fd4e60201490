//! [`Handlers`]: the one declaration of the DOM-event handlers a commander exposes — a table
//! from name to method, so a name that is not in it cannot be reached from a page and a
//! declared name always has code behind it.
//!
//! It must never decide whether a page may call a handler (the page channel checks the
//! table, and the token for shared commanders).

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::Value;

use super::{Page, Sender};
use crate::channel::BoxError;

/// What a handler may return: `Result<T, E>` with a serializable `T` (sent back as the
/// event reply's `result`, and shown to `after_handler`) and an error convertible to
/// [`BoxError`].
pub trait IntoOutcome {
    /// The value, or the error.
    fn into_outcome(self) -> Result<Value, BoxError>;
}

impl<T: Serialize, E: Into<BoxError>> IntoOutcome for Result<T, E> {
    fn into_outcome(self) -> Result<Value, BoxError> {
        let value = self.map_err(Into::into)?;
        Ok(serde_json::to_value(value)?)
    }
}

/// A handler with its future boxed, callable through the table.
pub(crate) type Erased<C> = Arc<
    dyn for<'a> Fn(&'a C, &'a mut Page, Sender) -> LocalBoxFuture<'a, Result<Value, BoxError>>
        + Send
        + Sync,
>;

/// The handlers of commander `C`, by name. Build it in [`Commander::handlers`]; each entry
/// is an `async fn(&self, &mut Page, Sender) -> Result<T, E>` (usually a method).
///
/// ```
/// use tether::channel::BoxError;
/// use tether::commander::{Commander, Handlers, Page, Patch, Sender};
///
/// struct Todo;
///
/// impl Todo {
///     async fn remove(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
///         // tether-click="remove(42)" on the page: sender.arg is 42.
///         let id = sender.arg.as_u64().ok_or("remove takes an item id")?;
///         page.apply(Patch::remove(&format!("#item-{id}")))?;
///         Ok(())
///     }
/// }
///
/// impl Commander for Todo {
///     fn name(&self) -> &'static str { "todo" }
///     fn handlers() -> Handlers<Self> { Handlers::new().on("remove", Self::remove) }
/// }
/// assert!(Todo::handlers().names().eq(["remove"]));
/// ```
///
/// [`Commander::handlers`]: super::Commander::handlers
pub struct Handlers<C> {
    table: Vec<(&'static str, Erased<C>)>,
}

impl<C: 'static> std::fmt::Debug for Handlers<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl<C> Default for Handlers<C> {
    fn default() -> Self {
        Handlers { table: Vec::new() }
    }
}

impl<C: 'static> Handlers<C> {
    /// No handlers.
    pub fn new() -> Handlers<C> {
        Handlers::default()
    }

    /// Declares handler `name`, run by `handler`. A second `on` with the same name replaces
    /// the first.
    pub fn on<F, R>(mut self, name: &'static str, handler: F) -> Handlers<C>
    where
        F: for<'a> AsyncFn(&'a C, &'a mut Page, Sender) -> R + Send + Sync + 'static,
        R: IntoOutcome,
    {
        let handler = Arc::new(handler);
        let erased: Erased<C> = Arc::new(move |commander, page, sender| {
            let handler = handler.clone();
            Box::pin(async move { handler(commander, page, sender).await.into_outcome() })
        });
        self.table.retain(|(n, _)| *n != name);
        self.table.push((name, erased));
        self
    }

    /// The declared names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.table.iter().map(|(name, _)| *name)
    }

    /// The handler called `name`, if declared.
    pub(crate) fn get(&self, name: &str) -> Option<&Erased<C>> {
        self.table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, handler)| handler)
    }
}
