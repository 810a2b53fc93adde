/* test_server.c: fl-serve's token compare and ticket table (lib/server.c),
 * the tickets on a clock of the test's own. */
#include "server_int.h"
#include "unit.h"

static void
test_ct_equal(void)
{
	const char *tok = "rwtoken-0123456789";
	char probe[64];
	size_t n = strlen(tok);

	CHECK(srv_ct_equal(tok, tok), "a token equals itself");
	CHECK(srv_ct_equal("", ""), "empty equals empty");
	CHECK(!srv_ct_equal(tok, ""), "a token does not equal the empty string");
	CHECK(!srv_ct_equal("", tok), "the empty string does not equal a token");
	/* a difference at every position, of one bit, is seen */
	{
		int all = 1;
		for (size_t i = 0; i < n; i++) {
			memcpy(probe, tok, n + 1);
			probe[i] ^= 1;
			if (srv_ct_equal(tok, probe) || srv_ct_equal(probe, tok))
				all = 0;
		}
		CHECK(all, "a one-bit difference at each of %zu positions is unequal", n);
	}
	/* prefixes and extensions: the shorter string is not padded into a match */
	{
		int all = 1;
		for (size_t i = 0; i < n; i++) {
			memcpy(probe, tok, i);
			probe[i] = 0;
			if (srv_ct_equal(tok, probe) || srv_ct_equal(probe, tok))
				all = 0;
		}
		CHECK(all, "none of the %zu proper prefixes equals the token", n);
	}
	snprintf(probe, sizeof(probe), "%sx", tok);
	CHECK(!srv_ct_equal(tok, probe) && !srv_ct_equal(probe, tok),
	    "the token with a byte more is unequal");
	CHECK(!srv_ct_equal("\x80", "\x81") && srv_ct_equal("\xff\x80", "\xff\x80"),
	    "bytes above 127 compare as bytes");
}

static int
valid_hex(const char *t)
{
	size_t n = strlen(t);

	if (n != 48)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return 0;
	return 1;
}

static void
test_tickets(void)
{
	static struct tickets tt;
	struct ticket a, b, c;
	double now = 1000;
	int all;

	memset(&tt, 0, sizeof(tt));
	CHECK(srv_ticket_issue(&tt, now, &a) == FL_OK && valid_hex(a.t),
	    "a ticket is 48 hex digits (%s)", a.t);
	CHECK(a.expires == now + 600, "it expires 600 s after issue");
	CHECK(srv_ticket_issue(&tt, now, &b) == FL_OK && strcmp(a.t, b.t),
	    "two tickets differ");
	CHECK(!srv_ticket_take(&tt, "", now), "the empty string is no ticket");
	CHECK(!srv_ticket_take(&tt, "00", now), "an unknown ticket is refused");
	CHECK(srv_ticket_take(&tt, a.t, now + 10), "a ticket is taken");
	CHECK(!srv_ticket_take(&tt, a.t, now + 11), "once only");
	CHECK(tt.n == 1, "the used ticket is gone from the table");
	/* the last second of the ten minutes, then the first after */
	CHECK(srv_ticket_issue(&tt, now, &c) == FL_OK, "a third ticket");
	CHECK(srv_ticket_take(&tt, c.t, now + 600), "a ticket still works at 600 s");
	CHECK(!srv_ticket_take(&tt, b.t, now + 600.001), "expired after 600 s");
	CHECK(tt.n == 0, "an expired ticket is dropped from the table");

	/* the cap: MAX_TICKETS open, then FL_ELIMIT until one goes */
	all = 1;
	for (int i = 0; i < MAX_TICKETS; i++)
		if (srv_ticket_issue(&tt, now + i * 0.1, &a) != FL_OK)
			all = 0;
	CHECK(all && tt.n == MAX_TICKETS, "%d tickets open", MAX_TICKETS);
	CHECK(srv_ticket_issue(&tt, now + 200, &b) == FL_ELIMIT, "ticket %d is refused",
	    MAX_TICKETS + 1);
	CHECK(srv_ticket_take(&tt, a.t, now + 200), "the last one issued is taken");
	CHECK(srv_ticket_issue(&tt, now + 200, &b) == FL_OK, "which makes room for one");
	CHECK(srv_ticket_issue(&tt, now + 200, &c) == FL_ELIMIT, "and one only");
	/* the first ten were issued at now .. now + 0.9: expired at now + 600.95 */
	CHECK(srv_ticket_issue(&tt, now + 600.95, &c) == FL_OK && tt.n == MAX_TICKETS - 9,
	    "expired tickets make room (%zu open)", tt.n);
	CHECK(srv_ticket_take(&tt, b.t, now + 700), "a ticket issued later still works");
}

int
main(void)
{
	test_ct_equal();
	test_tickets();
	printf("1..%d\n", unit_n);
	return unit_failed != 0;
}
