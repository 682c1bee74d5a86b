/* test_schema.c - engine/ipmirror.rng and the loader's structure table
 * (ipm_config_rules) say the same: every element with its parent and
 * occurrences, and its required and optional attributes, both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "config.h"

#define MAX_ELEMS 32
#define MAX_ATTRS 16
#define RNG_NS "http://relaxng.org/ns/structure/1.0"

/* One element as the schema declares it. */
struct elem {
	const char *parent, *name;   /* xmlChar owned by the document */
	unsigned min, max;           /* max 0 = any */
	const char *req[MAX_ATTRS], *opt[MAX_ATTRS];
	unsigned n_req, n_opt;
};

struct schema {
	xmlDoc *doc;
	struct elem e[MAX_ELEMS];
	unsigned n;
};

/* Where the walk is: the element that owns attributes met now, the
 * occurrences of an element met now, and whether an attribute is optional. */
struct at {
	struct elem *owner;
	unsigned min, max;
	bool opt;
};

static bool rng(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns &&
	       !xmlStrcmp(n->ns->href, BAD_CAST RNG_NS) && !xmlStrcmp(n->name, BAD_CAST name);
}

static const char *name_of(const xmlNode *n)
{
	const xmlAttr *a;

	for (a = n->properties; a; a = a->next)
		if (!xmlStrcmp(a->name, BAD_CAST "name") && a->children)
			return (const char *)a->children->content;
	return NULL;
}

static const xmlNode *find_define(const xmlNode *grammar, const char *name)
{
	for (const xmlNode *c = grammar->children; c; c = c->next)
		if (rng(c, "define") && !strcmp(name_of(c), name))
			return c;
	fail_msg("ipmirror.rng: <ref name=\"%s\"/> has no <define>", name);
	return NULL;
}

static void walk(struct schema *s, const xmlNode *grammar, const xmlNode *n, struct at at);

static void walk_children(struct schema *s, const xmlNode *grammar, const xmlNode *n,
			  struct at at)
{
	for (const xmlNode *c = n->children; c; c = c->next)
		walk(s, grammar, c, at);
}

static void add_element(struct schema *s, const xmlNode *grammar, const xmlNode *n,
			struct at at)
{
	struct elem *e;

	assert_true(s->n < MAX_ELEMS);
	e = &s->e[s->n++];
	e->parent = at.owner ? at.owner->name : NULL;
	e->name = name_of(n);
	e->min = at.min;
	e->max = at.max;
	walk_children(s, grammar, n, (struct at){ e, 1, 1, false });
}

static void add_attribute(const xmlNode *n, struct at at)
{
	struct elem *e = at.owner;

	assert_non_null(e);
	assert_true(e->n_req < MAX_ATTRS && e->n_opt < MAX_ATTRS);
	if (at.opt)
		e->opt[e->n_opt++] = name_of(n);
	else
		e->req[e->n_req++] = name_of(n);
}

static void walk(struct schema *s, const xmlNode *grammar, const xmlNode *n, struct at at)
{
	if (rng(n, "element")) {
		add_element(s, grammar, n, at);
	} else if (rng(n, "attribute")) {
		add_attribute(n, at);
	} else if (rng(n, "optional")) {
		walk_children(s, grammar, n, (struct at){ at.owner, 0, at.max, true });
	} else if (rng(n, "zeroOrMore")) {
		walk_children(s, grammar, n, (struct at){ at.owner, 0, 0, true });
	} else if (rng(n, "oneOrMore")) {
		walk_children(s, grammar, n, (struct at){ at.owner, at.min, 0, at.opt });
	} else if (rng(n, "ref")) {
		walk_children(s, grammar, find_define(grammar, name_of(n)), at);
	} else if (rng(n, "interleave") || rng(n, "group") || rng(n, "start")) {
		walk_children(s, grammar, n, at);
	} else if (n->type == XML_ELEMENT_NODE && !rng(n, "text") && !rng(n, "value")) {
		fail_msg("ipmirror.rng: <%s> is not understood by this test", (const char *)n->name);
	}
}

static void load_schema(struct schema *s)
{
	const char *path = getenv("IPMIRROR_SCHEMA");
	const xmlNode *grammar, *c;

	assert_non_null(path);
	memset(s, 0, sizeof(*s));
	s->doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
	assert_non_null(s->doc);
	grammar = xmlDocGetRootElement(s->doc);
	assert_true(rng(grammar, "grammar"));
	for (c = grammar->children; c; c = c->next)
		if (rng(c, "start"))
			walk(s, grammar, c, (struct at){ NULL, 1, 1, false });
	assert_true(s->n > 0);
}

static bool same_parent(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : a == b;
}

static const struct elem *find_elem(const struct schema *s, const struct ipm_config_rule *r)
{
	for (unsigned i = 0; i < s->n; i++)
		if (same_parent(s->e[i].parent, r->parent) && !strcmp(s->e[i].name, r->name))
			return &s->e[i];
	return NULL;
}

static bool in(const char *const *names, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n && names[i]; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

static unsigned count(const char *const *names, unsigned n)
{
	unsigned i;

	for (i = 0; i < n && names[i]; i++)
		;
	return i;
}

/* The attributes of one kind agree both ways; each difference printed. */
static unsigned diff_attrs(const char *where, const char *kind, const char *const *rng_names,
			   unsigned n_rng, const char *const *rule_names, unsigned n_rule)
{
	unsigned bad = 0, i;

	for (i = 0; i < n_rng; i++)
		if (!in(rule_names, n_rule, rng_names[i])) {
			print_message("# %s: %s attribute \"%s\" is in ipmirror.rng, not in rules[]\n",
				      where, kind, rng_names[i]);
			bad++;
		}
	for (i = 0; i < n_rule && rule_names[i]; i++)
		if (!in(rng_names, n_rng, rule_names[i])) {
			print_message("# %s: %s attribute \"%s\" is in rules[], not in ipmirror.rng\n",
				      where, kind, rule_names[i]);
			bad++;
		}
	return bad;
}

static unsigned diff_rule(const struct elem *e, const struct ipm_config_rule *r)
{
	char where[64];
	unsigned bad = 0;

	snprintf(where, sizeof(where), "<%s> in <%s>", r->name, r->parent ? r->parent : "");
	if (e->min != r->min || e->max != r->max) {
		print_message("# %s: ipmirror.rng says %u..%u times, rules[] %u..%u (0 = any)\n",
			      where, e->min, e->max, r->min, r->max);
		bad++;
	}
	bad += diff_attrs(where, "required", e->req, e->n_req, r->required, IPM_RULE_REQUIRED);
	bad += diff_attrs(where, "optional", e->opt, e->n_opt, r->optional, IPM_RULE_OPTIONAL);
	return bad;
}

/* Every rule has its element in the schema, the same in all respects. */
static void test_rules_in_schema(void **state)
{
	const struct ipm_config_rule *rules;
	struct schema s;
	unsigned n, bad = 0;

	(void)state;
	load_schema(&s);
	rules = ipm_config_rules(&n);
	assert_true(n > 0 && !rules[0].parent && !strcmp(rules[0].name, "ipmirror"));
	for (unsigned i = 0; i < n; i++) {
		const struct elem *e = find_elem(&s, &rules[i]);

		if (!e) {
			print_message("# <%s> in <%s> is in rules[], not in ipmirror.rng\n",
				      rules[i].name, rules[i].parent ? rules[i].parent : "");
			bad++;
			continue;
		}
		bad += diff_rule(e, &rules[i]);
	}
	xmlFreeDoc(s.doc);
	assert_int_equal(bad, 0);
}

/* Every element of the schema has its rule, once, and fits the table's
 * room for attributes. */
static void test_schema_in_rules(void **state)
{
	const struct ipm_config_rule *rules;
	struct schema s;
	unsigned n, bad = 0;

	(void)state;
	load_schema(&s);
	rules = ipm_config_rules(&n);
	for (unsigned i = 0; i < s.n; i++) {
		const struct elem *e = &s.e[i];
		unsigned found = 0;

		for (unsigned j = 0; j < n; j++)
			found += same_parent(e->parent, rules[j].parent) &&
				 !strcmp(e->name, rules[j].name);
		if (found != 1) {
			print_message("# <%s> in <%s> is in ipmirror.rng and %u times in rules[]\n",
				      e->name, e->parent ? e->parent : "", found);
			bad++;
		}
		assert_true(e->n_req <= IPM_RULE_REQUIRED && e->n_opt <= IPM_RULE_OPTIONAL);
	}
	assert_int_equal(s.n, n);
	xmlFreeDoc(s.doc);
	assert_int_equal(bad, 0);
}

/* The walk itself reads the schema right (a guard against a test that
 * finds nothing and so agrees with anything). */
static void test_walk_sane(void **state)
{
	const struct ipm_config_rule r = { "lun", "backing", 0, 0, { NULL }, { NULL } };
	const struct ipm_config_rule d = { "node", "data", 0, 0, { NULL }, { NULL } };
	const struct elem *e;
	struct schema s;

	(void)state;
	load_schema(&s);
	e = find_elem(&s, &r);
	assert_non_null(e);
	assert_int_equal(e->min, 1);
	assert_int_equal(e->max, 0);
	assert_true(in(e->req, e->n_req, "path") && in(e->opt, e->n_opt, "node"));
	/* attributes reached through <ref name="endpoint"/> belong to <data> */
	e = find_elem(&s, &d);
	assert_non_null(e);
	assert_int_equal(e->n_req, 2);
	assert_int_equal(count(e->opt, e->n_opt), 0);
	xmlFreeDoc(s.doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_walk_sane),
		cmocka_unit_test(test_rules_in_schema),
		cmocka_unit_test(test_schema_in_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
