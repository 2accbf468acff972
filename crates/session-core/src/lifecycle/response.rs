//! Step 3 as a response future: the handler's future, then the save.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::request::{RequestSession, SaveChanges};
use crate::{ContractViolation, Error};

pin_project_lite::pin_project! {
    /// Step 3 as an adapter's response future: runs the handler (the inner
    /// service's future), then, when the handler loaded the session, saves
    /// it with [`RequestSession::save_changes`]. Its output is the handler's
    /// response with the `Set-Cookie` header values to append to it, or the
    /// save's error, for which the adapter answers its error response.
    ///
    /// The values come as `H`: `String` unless the adapter names its
    /// framework's header value type (anything made `TryFrom<String>`, such
    /// as `http::HeaderValue`); a value that does not convert is an error.
    ///
    /// A request whose handler never asked for the session, or only read
    /// it, gets its response back without an allocation: the save future is
    /// polled in place. An error of the handler's future itself (a
    /// framework-level failure, not a response) ends the request unsaved.
    ///
    /// ```
    /// use session_core::{MemoryStore, WithSessionSaved, SessionConfig, SessionManager};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let request = manager.request();
    /// let handler = {
    ///     let request = request.clone();
    ///     async move {
    ///         request.session([]).await?.insert("user", "ada")?;
    ///         Ok::<_, session_core::Error>("the response")
    ///     }
    /// };
    /// let (response, set_cookies) = WithSessionSaved::<_, _, String>::new(handler, Some(request)).await?;
    /// assert_eq!(response, "the response");
    /// assert_eq!(set_cookies?.len(), 1);
    /// # Ok::<(), session_core::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct WithSessionSaved<F, R, H = String> {
        #[pin]
        handler: F,
        // `None` when someone else saves this request's session (an outer
        // layer), or once the handler's response arrived.
        session: Option<RequestSession>,
        // The save in progress, with the response it belongs to.
        saving: Option<(SaveChanges, R)>,
        // Whether the handler loaded the session (the save was started).
        loaded: bool,
        header: PhantomData<fn() -> H>,
    }
}

impl<F, R, H> WithSessionSaved<F, R, H> {
    /// Runs `handler`, then saves `session` if the handler loaded it, and
    /// gives the `Set-Cookie` values as `H` (the type named where the future
    /// is kept, e.g. `WithSessionSaved<F, Response, HeaderValue>`). `None`:
    /// only runs the handler, for a request whose session another layer of
    /// the same manager owns and saves.
    pub fn new(handler: F, session: Option<RequestSession>) -> Self {
        WithSessionSaved {
            handler,
            session,
            saving: None,
            loaded: false,
            header: PhantomData,
        }
    }

    /// Whether the response should say that it varies with the `Cookie`
    /// request header (`Vary: Cookie`), given its `Vary` header values: the
    /// handler loaded the session, so the response may depend on it, and
    /// they do not say so already (`*`, or `Cookie` in any case). With it,
    /// a shared cache never serves one visitor's response, or the session
    /// cookie it carries, to another. Asked once this future has returned.
    ///
    /// ```
    /// use session_core::{MemoryStore, WithSessionSaved, SessionConfig, SessionManager};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let request = manager.request();
    /// let handler = {
    ///     let request = request.clone();
    ///     async move { Ok::<_, session_core::Error>(request.session([]).await?.len()) }
    /// };
    /// let mut saved = std::pin::pin!(WithSessionSaved::<_, _, String>::new(handler, Some(request)));
    /// saved.as_mut().await?;
    /// assert!(saved.needs_vary_cookie([&b"Accept-Encoding"[..]]));
    /// assert!(!saved.needs_vary_cookie([&b"accept-encoding, cookie"[..]]));
    /// assert!(!saved.needs_vary_cookie([&b"*"[..]]));
    /// # Ok::<(), session_core::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn needs_vary_cookie<'a>(&self, vary: impl IntoIterator<Item = &'a [u8]>) -> bool {
        self.loaded
            && !vary.into_iter().any(|value| {
                value.split(|&byte| byte == b',').any(|name| {
                    let name = name.trim_ascii();
                    name == b"*" || name.eq_ignore_ascii_case(b"cookie")
                })
            })
    }
}

impl<F, R, H, E> Future for WithSessionSaved<F, R, H>
where
    F: Future<Output = Result<R, E>>,
    H: TryFrom<String>,
{
    /// The handler's response with the `Set-Cookie` header values to add
    /// (none when nothing was saved), or the error that kept the session
    /// from being saved.
    type Output = Result<(R, Result<Vec<H>, Error>), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (save, _) = match this.saving {
            Some(saving) => saving,
            None => {
                let response = std::task::ready!(this.handler.poll(cx))?;
                match this.session.take() {
                    // `save_changes` is ready at once when nothing is to be saved.
                    Some(session) if session.is_loaded() => {
                        *this.loaded = true;
                        this.saving.insert((session.save_changes(), response))
                    }
                    // Never loaded: nothing to save (what `save_changes` would say).
                    _ => return Poll::Ready(Ok((response, Ok(Vec::new())))),
                }
            }
        };
        let saved = std::task::ready!(Pin::new(save).poll(cx));
        let Some((_, response)) = this.saving.take() else {
            unreachable!("the save in progress was just polled");
        };
        Poll::Ready(Ok((response, saved.and_then(header_values))))
    }
}

/// `cookies` as header values of type `H`.
fn header_values<H: TryFrom<String>>(cookies: Vec<String>) -> Result<Vec<H>, Error> {
    cookies
        .into_iter()
        .map(|cookie| {
            H::try_from(cookie)
                .map_err(|_| Error::ContractViolation(ContractViolation::InvalidHeaderValue))
        })
        .collect()
}

impl<F, R, H> fmt::Debug for WithSessionSaved<F, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithSessionSaved")
            .field("saving", &self.saving.is_some())
            .finish_non_exhaustive()
    }
}
