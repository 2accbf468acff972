//! `WithSessionSaved`, the lifecycle's last step as a response future, around a
//! store that counts its writes and fails on command ([`FaultyStore`]).

use session_conformance::FaultyStore;
use session_core::{Error, SessionConfig, SessionManager, WithSessionSaved};

#[tokio::test]
async fn with_session_saved_saves_only_what_its_handler_loaded_and_changed() {
    let store = FaultyStore::default();
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    let respond = |request: session_core::RequestSession, write: bool| async move {
        let session = request.session([]).await?;
        if write {
            session.insert("user", "ada")?;
        }
        Ok::<_, Error>("response")
    };

    // A write: saved, and its cookie comes with the response.
    let request = manager.request();
    let (response, set) =
        WithSessionSaved::<_, _, String>::new(respond(request.clone(), true), Some(request))
            .await
            .unwrap();
    assert_eq!(
        (response, set.unwrap().len(), store.saves()),
        ("response", 1, 1)
    );

    // Only a read: nothing saved, no cookie.
    let request = manager.request();
    let (_, set) =
        WithSessionSaved::<_, _, String>::new(respond(request.clone(), false), Some(request))
            .await
            .unwrap();
    assert_eq!((set.unwrap().len(), store.saves()), (0, 1));

    // Never loaded, or owned by another layer: the handler alone runs.
    let request = manager.request();
    let (_, set) =
        WithSessionSaved::<_, _, String>::new(async { Ok::<_, Error>(()) }, Some(request))
            .await
            .unwrap();
    assert!(set.unwrap().is_empty());
    let request = manager.request();
    let (_, set) = WithSessionSaved::<_, _, String>::new(respond(request.clone(), true), None)
        .await
        .unwrap();
    assert_eq!((set.unwrap().len(), store.saves()), (0, 1));

    // A failed save is handed over with the response, for the error answer.
    store.fail_writes(true);
    let request = manager.request();
    let (response, set) =
        WithSessionSaved::<_, _, String>::new(respond(request.clone(), true), Some(request))
            .await
            .unwrap();
    assert_eq!(response, "response");
    assert!(set.is_err());

    // Values the framework's header type refuses are an error too.
    store.fail_writes(false);
    struct Refused;
    impl TryFrom<String> for Refused {
        type Error = ();
        fn try_from(_: String) -> Result<Self, ()> {
            Err(())
        }
    }
    let request = manager.request();
    let (_, set) =
        WithSessionSaved::<_, _, Refused>::new(respond(request.clone(), true), Some(request))
            .await
            .unwrap();
    assert!(set.is_err());

    // The handler's own error ends the request unsaved.
    let saves = store.saves();
    let request = manager.request();
    let handler = {
        let request = request.clone();
        async move {
            request.session([]).await?.insert("user", "ada")?;
            Err::<(), _>(Error::store("the handler's future failed"))
        }
    };
    assert!(
        WithSessionSaved::<_, _, String>::new(handler, Some(request))
            .await
            .is_err()
    );
    assert_eq!(store.saves(), saves);
}
