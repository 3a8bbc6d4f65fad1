/* Sifting raw records. Oracles: the simulator's own tallies taken while it
 * drew the events (sifted and error counts), the Hamming distance of the
 * two sifted keys, and files that do not belong together. */
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/linksim.h"
#include "kagi/sift.h"
#include "t.h"

static char dir[] = "/tmp/kagi-test-sift-XXXXXX";
static char pa[64], pb[64], pc[64], pd[64];

static void simulate(uint64_t seed, const char *a, const char *b, kagi_linksim_stats *st)
{
    kagi_linksim s;
    memset(&s, 0, sizeof s);
    kagi_link_defaults(&s.link);
    s.link.distance_km = 25;
    s.pulses = 200000000;
    s.seed = seed;
    ASSERT_OK(kagi_linksim_run(&s, a, b, st));
}

static void sifted_counts_match_the_simulation(void)
{
    kagi_linksim_stats st;
    simulate(1, pa, pb, &st);
    kagi_bits *ka = NULL, *kb = NULL;
    kagi_sift_stats ss;
    ASSERT_OK(kagi_sift_raw(pa, pb, &ka, &kb, &ss));
    if (!ka) return;
    ASSERT_EQ(ss.pulses, st.pulses);
    ASSERT_EQ(ss.detections, st.detections);
    ASSERT_EQ(ss.sifted_x, st.sifted_x);
    ASSERT_EQ(ss.sifted_z, st.sifted_z);
    ASSERT_EQ(ss.errors_z, st.errors_z);
    ASSERT_EQ(ss.sifted_x + ss.sifted_z + ss.dropped, ss.detections);
    ASSERT_EQ(ka->n, ss.sifted_x);
    ASSERT_EQ(kagi_bits_hamming(ka->w, kb->w, ka->n), st.errors_x);
    /* Per class: the totals add up and the intensities come from Alice. */
    double nx = 0, nz = 0, mz = 0;
    for (int k = 0; k < 3; k++) {
        nx += ss.counts.n_x[k];
        nz += ss.counts.n_z[k];
        mz += ss.counts.m_z[k];
    }
    ASSERT_EQ(nx, ss.sifted_x);
    ASSERT_EQ(nz, ss.sifted_z);
    ASSERT_EQ(mz, ss.errors_z);
    kagi_link l;
    kagi_link_defaults(&l);
    for (int k = 0; k < 3; k++) {
        ASSERT_NEAR(ss.counts.mu[k], l.mu[k], 0);
        ASSERT_NEAR(ss.counts.p_mu[k], l.p_mu[k], 0);
    }
    /* Vacuum pulses click only by dark counts: half their test bits err. */
    if (ss.counts.n_z[2] > 100)
        ASSERT_NEAR(ss.counts.m_z[2] / ss.counts.n_z[2], 0.5, 5 * 0.5 / sqrt(ss.counts.n_z[2]));
    ASSERT_NEAR(ss.qber_z, (double)st.errors_z / (double)st.sifted_z, 1e-12);
    kagi_bits_free(ka);
    kagi_bits_free(kb);
}

static void files_that_do_not_belong_together_are_refused(void)
{
    kagi_linksim_stats st;
    simulate(2, pc, pd, &st);
    kagi_bits *ka = (kagi_bits *)1, *kb = (kagi_bits *)1;
    kagi_sift_stats ss;
    /* Bob's file given as Alice's. */
    ASSERT_EQ(kagi_sift_raw(pb, pa, &ka, &kb, &ss), KAGI_ERR_FORMAT);
    ASSERT_TRUE(ka == NULL && kb == NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "bob records, alice's expected") != NULL);
    /* Two runs with different seeds: different detections. */
    ASSERT_EQ(kagi_sift_raw(pa, pd, &ka, &kb, &ss), KAGI_ERR_FORMAT);
    ASSERT_TRUE(strstr(kagi_errdetail(), "not the same detections") != NULL);
    /* A missing file names its path. */
    char missing[96];
    snprintf(missing, sizeof missing, "%s/none", dir);
    ASSERT_TRUE(kagi_sift_raw(missing, pb, &ka, &kb, &ss) != KAGI_OK);
    ASSERT_TRUE(strstr(kagi_errdetail(), missing) != NULL);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(pa, sizeof pa, "%s/a", dir);
    snprintf(pb, sizeof pb, "%s/b", dir);
    snprintf(pc, sizeof pc, "%s/c", dir);
    snprintf(pd, sizeof pd, "%s/d", dir);
    static const t_case cases[] = {T(sifted_counts_match_the_simulation),
                                   T(files_that_do_not_belong_together_are_refused), {NULL, NULL}};
    int rc = t_run(cases, argc, argv);
    unlink(pa), unlink(pb), unlink(pc), unlink(pd);
    rmdir(dir);
    return rc;
}
