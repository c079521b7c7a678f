//! Reservations: how long they hold stock, and a lifecycle (active, then committed, released or expired) that
//! replayed or out-of-order events cannot move backwards.

use crate::ErrorCode;
use crate::time::Timestamp;
use std::fmt;

/// How long a reservation holds its units before it expires, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReservationTtl(u32);

impl ReservationTtl {
    /// 30 minutes: long enough to type card details and pass 3-D Secure, short enough not to hide stock.
    pub const DEFAULT: ReservationTtl = ReservationTtl(30 * 60);
    /// The shortest lifetime accepted, one second (useful in tests).
    pub const MIN_SECONDS: u32 = 1;
    /// The longest lifetime accepted, 7 days: asynchronous payment methods such as SEPA Direct Debit can take
    /// days to succeed, but a reservation older than a week is a leak, not a checkout.
    pub const MAX_SECONDS: u32 = 7 * 24 * 60 * 60;

    /// A lifetime of `seconds`, refused outside [`Self::MIN_SECONDS`]..=[`Self::MAX_SECONDS`].
    pub fn from_seconds(seconds: u32) -> Result<Self, ReservationError> {
        if !(Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(ReservationError::InvalidTtl { seconds: f64::from(seconds) });
        }
        Ok(ReservationTtl(seconds))
    }

    /// A lifetime from a number as JSON and JavaScript carry it: a whole number of seconds in range.
    pub fn from_number(seconds: f64) -> Result<Self, ReservationError> {
        let in_range = seconds >= f64::from(Self::MIN_SECONDS) && seconds <= f64::from(Self::MAX_SECONDS);
        if !in_range || seconds.fract() != 0.0 {
            return Err(ReservationError::InvalidTtl { seconds });
        }
        // Whole and in range: the cast is exact.
        Ok(ReservationTtl(seconds as u32))
    }

    /// The lifetime in seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl Default for ReservationTtl {
    fn default() -> Self {
        ReservationTtl::DEFAULT
    }
}

/// The instant a reservation created at `created_at` with lifetime `ttl` expires, or an error past the year 9999.
pub fn reservation_expires_at(created_at: Timestamp, ttl: ReservationTtl) -> Result<Timestamp, ReservationError> {
    created_at.checked_add_millis(i64::from(ttl.0) * 1000).ok_or(ReservationError::ExpiryOutOfRange)
}

/// Whether a reservation that expires at `expires_at` is expired at `now`: true from the expiry instant on.
pub fn reservation_is_expired(expires_at: Timestamp, now: Timestamp) -> bool {
    now >= expires_at
}

/// Where a reservation is in its life. `Committed`, `Released` and `Expired` are terminal: once there, a
/// reservation never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    /// Holds its units until it is committed, released or expires.
    Active,
    /// The payment is under way (an asynchronous method such as SEPA Direct Debit): holds its units past its
    /// expiry instant, until the payment succeeds or fails.
    Processing,
    /// Paid: its units were sold.
    Committed,
    /// Given back before expiry (checkout canceled or failed for good).
    Released,
    /// Given back because its time ran out.
    Expired,
}

impl ReservationStatus {
    /// The status as stored and sent over the wire: `active`, `committed`, `released`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Active => "active",
            ReservationStatus::Processing => "processing",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }

    /// The status written as [`Self::as_str`] writes it.
    pub fn parse(text: &str) -> Result<Self, ReservationError> {
        match text {
            "active" => Ok(ReservationStatus::Active),
            "processing" => Ok(ReservationStatus::Processing),
            "committed" => Ok(ReservationStatus::Committed),
            "released" => Ok(ReservationStatus::Released),
            "expired" => Ok(ReservationStatus::Expired),
            _ => Err(ReservationError::UnknownStatus { text: text.chars().take(32).collect() }),
        }
    }

    /// No further change can happen.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ReservationStatus::Active | ReservationStatus::Processing)
    }

    /// Whether the reservation's units are no longer held (released or expired: they went back to availability).
    fn gave_units_back(self) -> bool {
        matches!(self, ReservationStatus::Released | ReservationStatus::Expired)
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What asking a reservation to change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The reservation moved to the given status: the caller must apply what that changes.
    Changed(ReservationStatus),
    /// The reservation was already where the request would take it (a replayed event, or a release racing an
    /// expiry): nothing to do, and the caller must not touch stock again.
    Unchanged(ReservationStatus),
}

/// A reservation's lifecycle: when it was made, when it expires, and where it is now.
///
/// Which units it holds is the caller's business (the sidecar keeps its lines); this type decides only whether
/// a change is allowed, so that every caller follows the same state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    created_at: Timestamp,
    expires_at: Timestamp,
    status: ReservationStatus,
}

impl Reservation {
    /// A new, active reservation made at `created_at` that holds its units for `ttl`.
    pub fn new(created_at: Timestamp, ttl: ReservationTtl) -> Result<Self, ReservationError> {
        let expires_at = reservation_expires_at(created_at, ttl)?;
        Ok(Reservation { created_at, expires_at, status: ReservationStatus::Active })
    }

    /// A reservation as it was stored, refused if it would expire before it was made.
    pub fn restore(
        created_at: Timestamp,
        expires_at: Timestamp,
        status: ReservationStatus,
    ) -> Result<Self, ReservationError> {
        if expires_at < created_at {
            return Err(ReservationError::ExpiresBeforeCreated);
        }
        Ok(Reservation { created_at, expires_at, status })
    }

    /// When the reservation was made.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// When the reservation stops holding its units.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Where the reservation is now.
    pub fn status(&self) -> ReservationStatus {
        self.status
    }

    /// True from the expiry instant on, whatever the status.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        reservation_is_expired(self.expires_at, now)
    }

    /// Whether the reservation's units count as reserved at `now`: while it is active and not past its expiry
    /// instant, and while its payment is processing. This is what availability subtracts.
    pub fn holds_units(&self, now: Timestamp) -> bool {
        match self.status {
            ReservationStatus::Active => !self.is_expired(now),
            ReservationStatus::Processing => true,
            _ => false,
        }
    }

    /// The payment succeeded: the held units are sold.
    ///
    /// Allowed while the reservation holds its units ([`Self::holds_units`]). A replay of the commit changes
    /// nothing. A reservation that no longer holds its units (past its expiry, released or expired) cannot be
    /// committed: its units may be someone else's by now, so the caller must reserve again (a late payment);
    /// the error says which case it is.
    pub fn commit(&mut self, now: Timestamp) -> Result<StatusChange, ReservationError> {
        match self.status {
            ReservationStatus::Committed => Ok(StatusChange::Unchanged(self.status)),
            _ if self.holds_units(now) => self.move_to(ReservationStatus::Committed),
            ReservationStatus::Active => Err(ReservationError::PastExpiry { expires_at: self.expires_at }),
            status => Err(ReservationError::NotActive { status }),
        }
    }

    /// Commits a reservation that no longer holds its units, after the caller reserved them again (a late
    /// payment). Refused only for a committed reservation, which is a replay ([`StatusChange::Unchanged`]).
    pub fn commit_late(&mut self) -> Result<StatusChange, ReservationError> {
        match self.status {
            ReservationStatus::Committed => Ok(StatusChange::Unchanged(self.status)),
            _ => self.move_to(ReservationStatus::Committed),
        }
    }

    /// The payment started processing (an asynchronous method): the reservation keeps its units past its expiry.
    /// Only an active reservation that still holds its units can start processing; a replay changes nothing.
    pub fn start_processing(&mut self, now: Timestamp) -> Result<StatusChange, ReservationError> {
        match self.status {
            ReservationStatus::Processing => Ok(StatusChange::Unchanged(self.status)),
            ReservationStatus::Active if self.holds_units(now) => self.move_to(ReservationStatus::Processing),
            ReservationStatus::Active => Err(ReservationError::PastExpiry { expires_at: self.expires_at }),
            status => Err(ReservationError::NotActive { status }),
        }
    }

    /// The checkout was canceled or failed for good: the held units go back to availability.
    ///
    /// Releasing a reservation that was already released or expired changes nothing (its units are already
    /// back). Releasing a committed one is refused: a cancellation that arrives after the payment succeeded
    /// must never put sold units back on sale.
    pub fn release(&mut self) -> Result<StatusChange, ReservationError> {
        match self.status {
            ReservationStatus::Active | ReservationStatus::Processing => self.move_to(ReservationStatus::Released),
            status if status.gave_units_back() => Ok(StatusChange::Unchanged(status)),
            status => Err(ReservationError::AlreadyCommitted { status }),
        }
    }

    /// The cleanup found the reservation past its expiry instant: it is marked expired.
    ///
    /// Refused before the expiry instant and while the payment is processing. Like [`Self::release`], a no-op
    /// on a released or expired reservation and refused on a committed one.
    pub fn expire(&mut self, now: Timestamp) -> Result<StatusChange, ReservationError> {
        match self.status {
            ReservationStatus::Active if !self.is_expired(now) => {
                Err(ReservationError::NotYetExpired { expires_at: self.expires_at })
            }
            ReservationStatus::Active => self.move_to(ReservationStatus::Expired),
            ReservationStatus::Processing => Err(ReservationError::NotActive { status: self.status }),
            status if status.gave_units_back() => Ok(StatusChange::Unchanged(status)),
            status => Err(ReservationError::AlreadyCommitted { status }),
        }
    }

    fn move_to(&mut self, status: ReservationStatus) -> Result<StatusChange, ReservationError> {
        self.status = status;
        Ok(StatusChange::Changed(status))
    }
}

/// What can go wrong with a reservation's lifetime or lifecycle.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReservationError {
    #[error(
        "{seconds} is not a valid reservation lifetime: give whole seconds from {} to {}",
        ReservationTtl::MIN_SECONDS,
        ReservationTtl::MAX_SECONDS
    )]
    InvalidTtl { seconds: f64 },
    #[error("the reservation would expire after the year 9999")]
    ExpiryOutOfRange,
    #[error("a reservation cannot expire before it was created")]
    ExpiresBeforeCreated,
    #[error("{text:?} is not a reservation status (active, committed, released, expired)")]
    UnknownStatus { text: String },
    #[error("the reservation is {status}: it cannot change that way")]
    NotActive { status: ReservationStatus },
    #[error("the reservation is already {status}: its units were sold and cannot be given back")]
    AlreadyCommitted { status: ReservationStatus },
    #[error("the reservation is still active until {expires_at}")]
    NotYetExpired { expires_at: Timestamp },
    #[error("the reservation expired at {expires_at}: its units are no longer held")]
    PastExpiry { expires_at: Timestamp },
}

impl ErrorCode for ReservationError {
    fn code(&self) -> &'static str {
        match self {
            ReservationError::InvalidTtl { .. } => "invalid_ttl",
            ReservationError::ExpiryOutOfRange => "invalid_date",
            ReservationError::ExpiresBeforeCreated => "invalid_reservation",
            ReservationError::UnknownStatus { .. } => "invalid_reservation",
            ReservationError::NotActive { .. } => "reservation_not_active",
            ReservationError::AlreadyCommitted { .. } => "reservation_already_committed",
            ReservationError::NotYetExpired { .. } => "reservation_not_expired",
            ReservationError::PastExpiry { .. } => "reservation_expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("valid test date")
    }

    fn reservation() -> Reservation {
        Reservation::new(at("2026-11-24T10:00:00Z"), ReservationTtl::DEFAULT).expect("in range")
    }

    #[test]
    fn a_reservation_expires_thirty_minutes_after_creation_by_default() {
        assert_eq!(reservation().expires_at(), at("2026-11-24T10:30:00Z"));
    }

    #[test]
    fn a_reservation_is_expired_from_its_expiry_instant_on() {
        let reservation = reservation();
        assert!(!reservation.is_expired(at("2026-11-24T10:29:59.999Z")));
        assert!(reservation.is_expired(at("2026-11-24T10:30:00Z")));
        assert!(reservation.is_expired(at("2026-11-25T00:00:00Z")));
    }

    #[test]
    fn lifetimes_must_be_whole_seconds_from_one_second_to_seven_days() {
        assert!(ReservationTtl::from_number(1.0).is_ok());
        assert!(ReservationTtl::from_number(604_800.0).is_ok());
        for bad in [0.0, -5.0, 1.5, 604_801.0, f64::NAN, f64::INFINITY] {
            assert_eq!(ReservationTtl::from_number(bad).map_err(|e| e.code()), Err("invalid_ttl"), "{bad}");
        }
        assert!(ReservationTtl::from_seconds(0).is_err());
    }

    #[test]
    fn an_expiry_past_the_year_9999_is_refused() {
        let late = at("9999-12-31T23:59:00Z");
        assert_eq!(reservation_expires_at(late, ReservationTtl::DEFAULT), Err(ReservationError::ExpiryOutOfRange));
    }

    /// Five minutes after the test reservation was made: it still holds its units.
    fn soon() -> Timestamp {
        at("2026-11-24T10:05:00Z")
    }

    #[test]
    fn a_committed_reservation_never_releases_or_expires() {
        let mut reservation = reservation();
        assert_eq!(reservation.commit(soon()), Ok(StatusChange::Changed(ReservationStatus::Committed)));
        assert_eq!(reservation.release().map_err(|e| e.code()), Err("reservation_already_committed"));
        let later = at("2026-11-25T00:00:00Z");
        assert_eq!(reservation.expire(later).map_err(|e| e.code()), Err("reservation_already_committed"));
        assert_eq!(reservation.status(), ReservationStatus::Committed);
    }

    #[test]
    fn a_replayed_commit_or_release_changes_nothing() {
        let mut committed = reservation();
        committed.commit(soon()).expect("active");
        assert_eq!(committed.commit(soon()), Ok(StatusChange::Unchanged(ReservationStatus::Committed)));

        let mut released = reservation();
        released.release().expect("active");
        assert_eq!(released.release(), Ok(StatusChange::Unchanged(ReservationStatus::Released)));
        let later = at("2026-11-25T00:00:00Z");
        assert_eq!(released.expire(later), Ok(StatusChange::Unchanged(ReservationStatus::Released)));
    }

    #[test]
    fn a_payment_after_release_or_expiry_cannot_commit_the_old_reservation() {
        let mut expired = reservation();
        expired.expire(at("2026-11-24T10:30:00Z")).expect("due");
        let error = expired.commit(soon()).expect_err("units no longer held");
        assert_eq!(error.code(), "reservation_not_active");
        assert_eq!(error.to_string(), "the reservation is expired: it cannot change that way");

        let mut released = reservation();
        released.release().expect("active");
        assert_eq!(released.commit(soon()).map_err(|e| e.code()), Err("reservation_not_active"));
    }

    #[test]
    fn an_active_reservation_past_its_expiry_no_longer_holds_units_and_cannot_commit_before_cleanup() {
        let mut reservation = reservation();
        let late = at("2026-11-24T11:00:00Z");
        assert!(!reservation.holds_units(late));
        assert_eq!(reservation.commit(late).map_err(|e| e.code()), Err("reservation_expired"));
        assert_eq!(reservation.status(), ReservationStatus::Active);
        assert_eq!(reservation.commit_late(), Ok(StatusChange::Changed(ReservationStatus::Committed)));
        assert_eq!(reservation.commit_late(), Ok(StatusChange::Unchanged(ReservationStatus::Committed)));
    }

    #[test]
    fn a_processing_reservation_holds_its_units_past_expiry_and_is_never_expired() {
        let mut reservation = reservation();
        assert_eq!(reservation.start_processing(soon()), Ok(StatusChange::Changed(ReservationStatus::Processing)));
        assert_eq!(reservation.start_processing(soon()), Ok(StatusChange::Unchanged(ReservationStatus::Processing)));
        let late = at("2026-11-25T10:00:00Z");
        assert!(reservation.holds_units(late));
        assert!(reservation.expire(late).is_err());
        assert_eq!(reservation.commit(late), Ok(StatusChange::Changed(ReservationStatus::Committed)));

        let mut failed = Reservation::new(at("2026-11-24T10:00:00Z"), ReservationTtl::DEFAULT).expect("valid");
        failed.start_processing(soon()).expect("active");
        assert_eq!(failed.release(), Ok(StatusChange::Changed(ReservationStatus::Released)));
        let mut too_late = Reservation::new(at("2026-11-24T10:00:00Z"), ReservationTtl::DEFAULT).expect("valid");
        assert_eq!(too_late.start_processing(late).map_err(|e| e.code()), Err("reservation_expired"));
    }

    #[test]
    fn the_cleanup_cannot_expire_a_reservation_before_its_time() {
        let mut reservation = reservation();
        let error = reservation.expire(at("2026-11-24T10:29:00Z")).expect_err("early");
        assert_eq!(error.code(), "reservation_not_expired");
        assert_eq!(reservation.status(), ReservationStatus::Active);
    }

    #[test]
    fn statuses_round_trip_through_their_text() {
        for status in [
            ReservationStatus::Active,
            ReservationStatus::Processing,
            ReservationStatus::Committed,
            ReservationStatus::Released,
            ReservationStatus::Expired,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Ok(status));
        }
        assert_eq!(ReservationStatus::parse("paid").map_err(|e| e.code()), Err("invalid_reservation"));
    }

    #[derive(Debug, Clone, Copy)]
    enum Event {
        Commit { minutes_after_creation: i64 },
        Release,
        Expire { minutes_after_creation: i64 },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0_i64..60).prop_map(|minutes_after_creation| Event::Commit { minutes_after_creation }),
            Just(Event::Release),
            (0_i64..60).prop_map(|minutes_after_creation| Event::Expire { minutes_after_creation }),
        ]
    }

    proptest! {
        #[test]
        fn terminal_states_never_change_and_changes_happen_at_most_once(events in proptest::collection::vec(event(), 1..20)) {
            let mut reservation = reservation();
            let mut changes = 0;
            let mut terminal: Option<ReservationStatus> = None;
            let minutes = |reservation: &Reservation, minutes: i64| {
                reservation.created_at().checked_add_millis(minutes * 60_000).expect("in range")
            };
            for event in events {
                let outcome = match event {
                    Event::Commit { minutes_after_creation } => {
                        let now = minutes(&reservation, minutes_after_creation);
                        reservation.commit(now)
                    }
                    Event::Release => reservation.release(),
                    Event::Expire { minutes_after_creation } => {
                        let now = minutes(&reservation, minutes_after_creation);
                        reservation.expire(now)
                    }
                };
                if let Ok(StatusChange::Changed(status)) = outcome {
                    changes += 1;
                    terminal = Some(status);
                }
                if let Some(terminal) = terminal {
                    prop_assert_eq!(reservation.status(), terminal);
                }
            }
            prop_assert!(changes <= 1);
        }
    }
}
