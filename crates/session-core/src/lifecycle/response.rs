//! Step 3 as a response future: the handler's future, then the save.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::request::{Finish, RequestSession};
use crate::Error;

pin_project_lite::pin_project! {
    /// Step 3 as an adapter's response future: runs the handler (the inner
    /// service's future), then, when the handler loaded the session, saves
    /// it with [`RequestSession::finish`]. Its output is the handler's
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
    /// use session_core::{MemoryStore, SaveAfter, SessionConfig, SessionManager};
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
    /// let (response, set_cookies) = SaveAfter::new(handler, Some(request)).await?;
    /// assert_eq!(response, "the response");
    /// assert_eq!(set_cookies?.len(), 1);
    /// # Ok::<(), session_core::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct SaveAfter<F, R, H = String> {
        #[pin]
        handler: F,
        // `None` when someone else saves this request's session (an outer
        // layer), or once the handler's response arrived.
        session: Option<RequestSession>,
        // The save in progress, with the response it belongs to.
        saving: Option<(Finish, R)>,
        header: PhantomData<fn() -> H>,
    }
}

impl<F, R> SaveAfter<F, R> {
    /// Runs `handler`, then saves `session` if the handler loaded it, and
    /// gives the `Set-Cookie` values as `String`s. `None`: only runs the
    /// handler, for a request whose session another layer of the same kind
    /// owns and saves.
    pub fn new(handler: F, session: Option<RequestSession>) -> Self {
        Self::with_header_type(handler, session)
    }
}

impl<F, R, H> SaveAfter<F, R, H> {
    /// As [`new`](SaveAfter::new), giving the `Set-Cookie` values as `H`,
    /// the framework's header value type (named where the future is kept,
    /// e.g. `SaveAfter<F, Response, HeaderValue>`).
    pub fn with_header_type(handler: F, session: Option<RequestSession>) -> Self {
        SaveAfter {
            handler,
            session,
            saving: None,
            header: PhantomData,
        }
    }
}

impl<F, R, H, E> Future for SaveAfter<F, R, H>
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
        let (finish, _) = match this.saving {
            Some(saving) => saving,
            None => {
                let response = std::task::ready!(this.handler.poll(cx))?;
                match this.session.take() {
                    // `finish` is ready at once when nothing is to be saved.
                    Some(session) if session.is_loaded() => {
                        this.saving.insert((session.finish(), response))
                    }
                    // Never loaded: nothing to save (what `finish` would say).
                    _ => return Poll::Ready(Ok((response, Ok(Vec::new())))),
                }
            }
        };
        let saved = std::task::ready!(Pin::new(finish).poll(cx));
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
                .map_err(|_| Error::store("the session cookie is not a valid header value"))
        })
        .collect()
}

impl<F, R, H> fmt::Debug for SaveAfter<F, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveAfter")
            .field("saving", &self.saving.is_some())
            .finish_non_exhaustive()
    }
}
