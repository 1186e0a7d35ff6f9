//! Removing a container or pod patiently: Podman 4.3 sometimes refuses a removal a moment
//! too early.

use std::time::Duration;

/// How often a removal is tried before it is given up (and logged), and the first pause.
const REMOVE_ATTEMPTS: u32 = 5;
const REMOVE_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Runs a Podman removal, again after a growing pause while it fails. Podman 4.3 sometimes
/// fails to remove a container that just exited because its cleanup process still holds the
/// container's mounts (`unlinkat …/userdata/shm: device or resource busy`); the same call a
/// moment later succeeds. A 404 at once (nothing to remove) is not retried and is an error; a
/// 404 after a failed attempt means that attempt removed it after all, and is success. Gives the
/// last error once the attempts (about 1.5 s) are used up.
pub(super) async fn remove_patiently<T, F, Fut>(mut remove: F) -> Result<(), podman_api::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, podman_api::Error>>,
{
    let mut pause = REMOVE_FIRST_PAUSE;
    for attempt in 1..=REMOVE_ATTEMPTS {
        match remove().await {
            Ok(_) => return Ok(()),
            Err(podman_api::Error::Fault { code, .. }) if code.as_u16() == 404 && attempt > 1 => {
                return Ok(());
            }
            Err(podman_api::Error::Fault { code, message })
                if code.as_u16() != 404 && attempt < REMOVE_ATTEMPTS =>
            {
                tracing::debug!(%code, %message, ?pause, "a removal failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn fault(code: u16) -> podman_api::Error {
        podman_api::Error::Fault {
            code: code.try_into().unwrap(),
            message: format!("status {code}"),
        }
    }

    /// Runs `remove_patiently` over these answers in turn; returns its result and the calls.
    async fn over(answers: &[u16]) -> (Result<(), podman_api::Error>, usize) {
        let calls = Cell::new(0);
        let result = remove_patiently(|| {
            let answer = answers[calls.get()];
            calls.set(calls.get() + 1);
            async move {
                if answer == 200 {
                    Ok(())
                } else {
                    Err(fault(answer))
                }
            }
        })
        .await;
        (result, calls.get())
    }

    #[tokio::test]
    async fn a_busy_container_is_removed_on_a_later_try() {
        let (result, calls) = over(&[500, 500, 200]).await;
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn gone_after_a_failed_try_is_removed_but_gone_at_once_is_an_error() {
        let (result, calls) = over(&[500, 404]).await;
        assert!(result.is_ok(), "the failed try removed it after all");
        assert_eq!(calls, 2);
        let (result, calls) = over(&[404]).await;
        assert!(matches!(result, Err(podman_api::Error::Fault { .. })));
        assert_eq!(calls, 1, "a 404 at once is not retried");
    }

    #[tokio::test]
    async fn it_gives_up_after_the_attempts_with_the_last_error() {
        let (result, calls) = over(&[500; REMOVE_ATTEMPTS as usize]).await;
        assert!(result.is_err());
        assert_eq!(calls, REMOVE_ATTEMPTS as usize);
    }
}
