//! Console sessions on the in-memory store: sign-in with an access key, idle and absolute
//! expiry, sign-out, a key deleted meanwhile, and the form token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use podid_core::{CONSOLE_ABSOLUTE_MS, CONSOLE_IDLE_MS, Error, csrf_matches};

const START: i64 = 1_764_892_800;

#[tokio::test]
async fn a_session_lives_while_used_and_ends_idle_absolute_or_signed_out() {
    let (core, clock, a, _) = common::two_accounts(8, START).await;
    let key = core
        .iam()
        .create_access_key(&a, Some("admin"))
        .await
        .unwrap();
    let id = key.record.id.clone();
    let secret = key.secret.expose().clone();

    // A wrong secret, an unknown key: one text, no session.
    for (k, s) in [
        (id.as_str(), "wrong"),
        ("AKIAUNKNOWN000000000", secret.as_str()),
    ] {
        let e = core.console_sign_in(k, s).await.unwrap_err();
        assert!(
            matches!(&e, Error::InvalidClientTokenId(m) if m.contains("not valid")),
            "{e:?}"
        );
    }

    let session = core.console_sign_in(&id, &secret).await.unwrap();
    assert_eq!(session.caller.arn(), "arn:aws:iam::111122223333:user/admin");
    let token = session.token.expose().clone();
    assert_eq!(token.len(), 64);
    let opened = core.console_session(&token).await.unwrap().unwrap();
    assert!(csrf_matches(&opened.csrf, session.csrf.expose()));
    assert!(!csrf_matches(&opened.csrf, "0000"));
    assert!(core.console_session("not a token").await.unwrap().is_none());

    // Used every 20 minutes, it lives until the absolute limit.
    let mut used = 0;
    while used + 20 * 60 * 1000 < CONSOLE_ABSOLUTE_MS {
        clock.advance_millis(20 * 60 * 1000);
        used += 20 * 60 * 1000;
        assert!(
            core.console_session(&token).await.unwrap().is_some(),
            "at {used} ms"
        );
    }
    clock.advance_millis(CONSOLE_ABSOLUTE_MS - used + 1);
    assert!(
        core.console_session(&token).await.unwrap().is_none(),
        "past 12 hours"
    );

    // Idle for longer than the limit: ended. An abandoned session's record is pruned; a live
    // one's is kept.
    let idle = core.console_sign_in(&id, &secret).await.unwrap();
    let abandoned = core.console_sign_in(&id, &secret).await.unwrap();
    clock.advance_millis(CONSOLE_IDLE_MS + 1);
    let fresh = core.console_sign_in(&id, &secret).await.unwrap();
    assert_eq!(core.prune_console_sessions().await.unwrap(), 2);
    assert_eq!(core.prune_console_sessions().await.unwrap(), 0);
    assert!(
        core.console_session(abandoned.token.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        core.console_session(fresh.token.expose())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        core.console_session(idle.token.expose())
            .await
            .unwrap()
            .is_none()
    );

    // Signed out: the token opens nothing, even copied.
    let out = core.console_sign_in(&id, &secret).await.unwrap();
    core.console_sign_out(out.token.expose()).await.unwrap();
    assert!(
        core.console_session(out.token.expose())
            .await
            .unwrap()
            .is_none()
    );

    // The key deleted: its sessions end, and it signs in no more.
    let live = core.console_sign_in(&id, &secret).await.unwrap();
    core.iam()
        .delete_access_key(&a, Some("admin"), &id)
        .await
        .unwrap();
    assert!(
        core.console_session(live.token.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(core.console_sign_in(&id, &secret).await.is_err());
}
