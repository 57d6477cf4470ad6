/* SPDX-License-Identifier: Apache-2.0 */
/* The nucleusd benchmark's pieces shared by its files (bench_nucleusd.c, load.c). */
#ifndef NUCLEUS_BENCH_NUCLEUSD_H
#define NUCLEUS_BENCH_NUCLEUSD_H

#include <stdbool.h>
#include <stddef.h>

struct stats {
	double p50, p90, p99, p999, mean, max, per_s;
	long n;
	long errors; /* requests that did not get the expected status (load runs) */
};

double now_us(void);
/* Sorts @lat[0..n) and fills @s; @total_us is the wall time of the run. */
void summarize(double *lat, long n, double total_us, struct stats *s);
int sock_connect(const char *path);
int write_all(int fd, const char *p, size_t n);
/* Reads one Content-Length framed response into @buf; its status or -errno. */
int read_response(int fd, char *buf, size_t cap);

/*
 * @clients threads send @calls requests @req in all (each its share), over one keep-alive
 * connection each or (@per_conn) one connection per request, and wait for each reply:
 * latency of every request answered @want_status; the others (refused connections,
 * other statuses, broken connections) are counted in s->errors and the run goes on.
 */
int load_run(const char *sock, const char *req, long calls, int clients, bool per_conn,
	     int want_status, struct stats *s);

#endif
