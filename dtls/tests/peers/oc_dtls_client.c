/*
 * oc_dtls_client: a DTLS 1.2 client that behaves like openconnect 9.01's
 * PSK-NEGOTIATE DTLS client (gnutls-dtls.c, start_dtls_psk_handshake) on
 * GnuTLS, for corridor's interop tests.
 *
 * What it copies from openconnect:
 *   - session flags GNUTLS_CLIENT | GNUTLS_DATAGRAM | GNUTLS_NO_EXTENSIONS
 *     (set NOEXT=0 in the environment to drop GNUTLS_NO_EXTENSIONS);
 *     openconnect also sets GNUTLS_NONBLOCK, which changes nothing on the wire;
 *   - the priority string openconnect builds with default options;
 *   - PSK identity "psk" with a raw key (openconnect derives 32 bytes from the
 *     CSTP session's "EXPORTER-openconnect-psk" exporter; here it is given);
 *   - the ClientHello session_id set to the X-DTLS-App-ID bytes
 *     (gnutls_session_set_id);
 *   - a connect()ed UDP socket.
 *
 * usage: oc_dtls_client HOST PORT PSKHEX APPIDHEX [PRIORITY]
 *   APPIDHEX may be "" to send an empty session_id.
 *
 * Output (stdout, line buffered):
 *   HANDSHAKE OK <session description> suite=<GnuTLS suite name> ems=<0|1>
 *   RECV <first application-data record, without its trailing newline>
 *   DONE
 * Exit status: 0 success; 1 usage; 2 setup or handshake failure
 * ("ERROR handshake: <reason>" on stderr); 3 send/receive failure.
 * GnuTLS itself honours SSLKEYLOGFILE.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#include <gnutls/dtls.h>
#include <gnutls/gnutls.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define OC_DEFAULT_PRIORITY                                                    \
	"NORMAL:-VERS-SSL3.0:+SHA256:%COMPAT:-3DES-CBC:-ARCFOUR-128"           \
	":-VERS-TLS-ALL:+VERS-DTLS-ALL:-KX-ALL:+PSK"
#define OC_PSK_IDENTITY "psk"
#define HANDSHAKE_TIMEOUT_MS 10000
#define RETRANSMIT_MS 1000
#define RECORD_TIMEOUT_MS 10000
#define MAX_KEY_LEN 64
#define MAX_APP_ID_LEN 32 /* a session_id is at most 32 bytes */

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the whole string; returns the byte count or -1 if it is not
 * an even-length hex string that fits in max bytes. */
static int decode_hex(const char *text, unsigned char *out, size_t max)
{
	size_t len = strlen(text);
	size_t i;

	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (i = 0; i < len / 2; i++) {
		int hi = hex_nibble(text[2 * i]);
		int lo = hex_nibble(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(len / 2);
}

static int fail(const char *what, int err, int status)
{
	fprintf(stderr, "ERROR %s: %s\n", what, gnutls_strerror(err));
	return status;
}

static int connect_udp(const char *host, const char *port)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "ERROR resolve %s:%s: %s\n", host, port,
			gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		perror("ERROR connect");
	return fd;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s HOST PORT PSKHEX APPIDHEX [PRIORITY]\n"
		"  env NOEXT=0 drops GNUTLS_NO_EXTENSIONS\n",
		argv0);
}

int main(int argc, char **argv)
{
	unsigned char key[MAX_KEY_LEN], app_id[MAX_APP_ID_LEN];
	const char *priority = OC_DEFAULT_PRIORITY;
	const char *noext = getenv("NOEXT");
	const char *err_pos = NULL;
	const char *msg = "cli-hello\n";
	gnutls_psk_client_credentials_t cred;
	gnutls_session_t session;
	gnutls_datum_t key_datum, id_datum;
	unsigned int flags = GNUTLS_CLIENT | GNUTLS_DATAGRAM;
	char buf[4096];
	char *desc;
	int key_len, app_id_len, fd, rc;
	ssize_t n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 5 || argc > 6) {
		usage(argv[0]);
		return 1;
	}
	key_len = decode_hex(argv[3], key, sizeof(key));
	app_id_len = decode_hex(argv[4], app_id, sizeof(app_id));
	if (key_len <= 0 || app_id_len < 0) {
		fprintf(stderr, "ERROR arguments: PSKHEX must be 1..%d bytes and "
				"APPIDHEX 0..%d bytes of hex\n",
			MAX_KEY_LEN, MAX_APP_ID_LEN);
		return 1;
	}
	if (argc == 6)
		priority = argv[5];
	if (noext == NULL || strcmp(noext, "0") != 0)
		flags |= GNUTLS_NO_EXTENSIONS;

	rc = gnutls_global_init();
	if (rc < 0)
		return fail("global_init", rc, 2);
	rc = gnutls_init(&session, flags);
	if (rc < 0)
		return fail("init", rc, 2);
	rc = gnutls_priority_set_direct(session, priority, &err_pos);
	if (rc < 0) {
		fprintf(stderr, "ERROR priority: %s (at '%s')\n",
			gnutls_strerror(rc), err_pos ? err_pos : "");
		return 2;
	}
	if (app_id_len > 0) {
		id_datum.data = app_id;
		id_datum.size = (unsigned int)app_id_len;
		rc = gnutls_session_set_id(session, &id_datum);
		if (rc < 0)
			return fail("session_set_id", rc, 2);
	}

	rc = gnutls_psk_allocate_client_credentials(&cred);
	if (rc < 0)
		return fail("psk credentials", rc, 2);
	key_datum.data = key;
	key_datum.size = (unsigned int)key_len;
	rc = gnutls_psk_set_client_credentials(cred, OC_PSK_IDENTITY, &key_datum,
					       GNUTLS_PSK_KEY_RAW);
	if (rc < 0)
		return fail("psk credentials", rc, 2);
	rc = gnutls_credentials_set(session, GNUTLS_CRD_PSK, cred);
	if (rc < 0)
		return fail("credentials_set", rc, 2);

	fd = connect_udp(argv[1], argv[2]);
	if (fd < 0)
		return 2;
	gnutls_transport_set_int(session, fd);
	gnutls_handshake_set_timeout(session, HANDSHAKE_TIMEOUT_MS);
	gnutls_dtls_set_timeouts(session, RETRANSMIT_MS, HANDSHAKE_TIMEOUT_MS);

	do {
		rc = gnutls_handshake(session);
	} while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
	if (rc < 0)
		return fail("handshake", rc, 2);

	desc = gnutls_session_get_desc(session);
	printf("HANDSHAKE OK %s suite=%s ems=%d\n", desc ? desc : "?",
	       gnutls_cipher_suite_get_name(gnutls_kx_get(session),
					    gnutls_cipher_get(session),
					    gnutls_mac_get(session)),
	       gnutls_session_ext_master_secret_status(session) ? 1 : 0);
	gnutls_free(desc);

	gnutls_record_set_timeout(session, RECORD_TIMEOUT_MS);
	do {
		n = gnutls_record_send(session, msg, strlen(msg));
	} while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	if (n < 0)
		return fail("send", (int)n, 3);

	do {
		n = gnutls_record_recv(session, buf, sizeof(buf) - 1);
	} while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	if (n < 0)
		return fail("recv", (int)n, 3);
	if (n == 0) {
		fprintf(stderr, "ERROR recv: peer sent close_notify before any data\n");
		return 3;
	}
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	printf("RECV %s\n", buf);

	gnutls_bye(session, GNUTLS_SHUT_WR);
	printf("DONE\n");

	close(fd);
	gnutls_deinit(session);
	gnutls_psk_free_client_credentials(cred);
	gnutls_global_deinit();
	return 0;
}
