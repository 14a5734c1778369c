# The two commands of the README: `make run` and `make test`. Both first make sure Pingora's
# build needs (cmake, a C compiler) are there, installing them where this machine allows.

CARGO ?= cargo
CONFIG ?= conf/gatehouse.toml

.PHONY: deps run release test lint pgo screenshots

deps:
	@if ! command -v cargo >/dev/null 2>&1; then \
	  echo "gatehouse needs a Rust toolchain: install it from https://rustup.rs, then run make again."; exit 1; fi
	@if ! command -v cmake >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing cmake and a C compiler (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake build-essential >/dev/null; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	    echo "installing cmake and a C compiler (sudo apt-get)"; \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake build-essential >/dev/null; \
	  else \
	    echo "gatehouse needs cmake and a C compiler to build Pingora. Install them, then run make again:"; \
	    echo "  Debian/Ubuntu: apt-get install cmake build-essential"; \
	    echo "  Fedora/RHEL:   dnf install cmake gcc gcc-c++ make"; \
	    echo "  macOS:         xcode-select --install && brew install cmake"; \
	    exit 1; \
	  fi; \
	fi

run: deps
	$(CARGO) run --release -- serve -c $(CONFIG)

# The production build (what the Dockerfile ships, and what the systemd instructions install):
# profile-guided, trained on loopback by deploy/pgo-train (deploy/pgo-build.sh; two release
# builds, ~25 minutes on two cores). The binary: target/pgo-use/release/gatehouse.
release: deps
	bash deploy/pgo-build.sh

# The integration tests are one binary (tests/it) whose tests mostly wait on sockets and child
# processes: they run TEST_THREADS at a time. The few whose assertions measure time or throughput
# (TESTS_ALONE: a timing ratio, a latency bound, a request rate) run afterwards, one at a time,
# with nothing else competing for the CPU (tests/it/harness.rs checks that each name exists).
TEST_THREADS ?= 8
# The tests build gatehouse without jemalloc (the shipped binary's allocator): the behaviour is
# the same, and its C build is the longest step of a clean test build.
TEST_FEATURES ?= --no-default-features
TESTS_ALONE = \
	mail::a_mail_server_that_never_answers_slows_no_answer \
	mail::an_unknown_address_gets_the_same_answer_in_the_same_time_and_no_mail \
	postgres_tls::sslmode_require_is_encrypted_verified_and_refused_otherwise \
	rate_limits::a_steady_rate_above_the_limit_is_admitted_at_the_limit_within_one_burst \
	rate_limits::two_postgres_replicas_with_a_shared_limit_admit_one_budget_within_ten_percent \
	replica_sessions::a_password_change_through_a_ends_the_users_sessions_on_b_within_the_bound \
	replica_sessions::a_session_from_a_works_on_b_and_ended_through_a_is_refused_by_b_within_the_bound \
	replica_sessions::signing_out_a_device_through_a_refuses_its_access_token_on_bs_next_request \
	replicas::kill_9_of_one_replica_under_load_loses_no_acknowledged_write \
	replicas::revocation_through_a_reaches_b_within_the_bound \
	replicas::rolling_upgrade_of_both_replicas_fails_no_request_and_never_stalls \
	resilience::a_login_flood_is_answered_and_the_proxy_keeps_flowing \
	resilience::unknown_user_logins_cost_the_same_as_wrong_passwords \
	switchover::every_django_hasher_logs_in_and_is_rehashed_to_argon2id

test: deps
	$(CARGO) test $(TEST_FEATURES) --lib --tests -- --test-threads=$(TEST_THREADS) --exact $(addprefix --skip ,$(TESTS_ALONE))
	$(CARGO) test $(TEST_FEATURES) --test it -- --test-threads=1 --exact $(TESTS_ALONE)
	bash tests/schemathesis.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The bare Pingora floor built the way `make release` builds gatehouse (profile-guided), so the
# load run compares like with like (benches/pgo/run.sh: trained with wrk; ~20 min on two cores).
pgo: deps
	SKIP_CALLGRIND=1 bash benches/pgo/run.sh

# The README's pictures of the console, taken by the console's browser tests (real Chromium).
SCREENS = $(CURDIR)/target/screens
screenshots: deps
	rm -rf $(SCREENS) && mkdir -p $(SCREENS) docs/console
	GATEHOUSE_TEST_SCREENS=$(SCREENS) $(CARGO) test $(TEST_FEATURES) --test it -- --test-threads=2 console
	cp $(SCREENS)/console-home-1280.png docs/console/home.png
	cp $(SCREENS)/console-users-1280.png docs/console/users.png
	cp $(SCREENS)/console-user-1280.png docs/console/user.png
	cp $(SCREENS)/console-groups-1280.png docs/console/groups.png
	cp $(SCREENS)/console-audit-1280.png docs/console/audit.png
	cp $(SCREENS)/console-users-390.png docs/console/users-phone.png
