"""Word lists the entity recognizers consult: non-names, non-organization acronyms, places."""

from __future__ import annotations

from service.llm.offline.language import word_set

# Capitalised words that start sentences or name months and days rather than entities.
NOT_NAMES = word_set(
    """
    The A An This That These Those Our Your My We I You He She They It Its In At On For From
    To With By And But Or If When Where While After Before Please Thanks Thank Dear Hi Hello
    Hey Best Regards Sincerely Cheers Yes No Also However Today Tomorrow Yesterday Monday
    Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
    July August September October November December Invoice Order Ticket Subject Re Fwd
    Total Subtotal Due Date Amount Payment Customer Support Team Account Item Items Qty
    Price Note Notes Bill Ship Billing Shipping Phone Email Address Description Summary
    Update Hope Unfortunately
    """
)
NON_ORG_ACRONYMS = word_set(
    """
    USD EUR GBP JPY CHF CAD AUD INR CNY ID OK CEO CFO CTO PDF FAQ ASAP AM PM VAT TBD FYI RE
    FW FWD PS NB QTY NO SKU
    """
)
PLACES = word_set(
    """
    Afghanistan Argentina Australia Austria Belgium Brazil Canada Chile China Colombia
    Denmark Egypt Finland France Germany Greece India Indonesia Ireland Israel Italy Japan
    Kenya Mexico Morocco Netherlands Nigeria Norway Pakistan Peru Philippines Poland
    Portugal Russia Scotland Singapore Spain Sweden Switzerland Thailand Turkey Ukraine
    Vietnam Wales England Britain Europe Asia Africa America London Paris Berlin Madrid Rome
    Vienna Amsterdam Brussels Dublin Lisbon Prague Warsaw Stockholm Oslo Copenhagen Helsinki
    Zurich Geneva Munich Hamburg Frankfurt Milan Barcelona Athens Istanbul Moscow Tokyo
    Osaka Beijing Shanghai Seoul Mumbai Delhi Bangalore Singapore Sydney Melbourne Toronto
    Vancouver Montreal Chicago Boston Seattle Denver Austin Dallas Houston Miami Atlanta
    Phoenix Portland Cairo Lagos Nairobi Johannesburg Dubai Manchester Edinburgh Lyon
    Marseille Texas California Florida Ontario Bavaria
    """
) | {
    "New York",
    "San Francisco",
    "Los Angeles",
    "United States",
    "United Kingdom",
    "Hong Kong",
    "Mexico City",
    "Cape Town",
    "Buenos Aires",
    "Rio de Janeiro",
    "South Africa",
    "New Zealand",
    "São Paulo",
    "Washington",
}

FIRST_NAMES = word_set(
    """
    Aaron Adam Adrian Ahmed Aisha Alan Alex Alexander Alice Alicia Amanda Amy Ana Andrea
    Andrew Angela Anna Anne Anthony Antonio Ben Benjamin Beth Brian Carlos Carol Caroline
    Catherine Charles Charlotte Chen Chris Christina Christopher Claire Daniel David Deborah
    Diana Diego Elena Elizabeth Ella Emily Emma Eric Eva Fatima Felix Francesco Frank
    Gabriel George Grace Hannah Hans Harry Helen Henry Ian Isabel Jack Jacob James Jane
    Jason Jennifer Jessica Joanna John Jonathan Jose Joseph Juan Julia Karen Kate Katherine
    Kevin Laura Leo Linda Lisa Lucas Lucy Luis Maria Mark Martin Mary Matthew Mei Michael
    Michelle Mohammed Nancy Nicole Noah Olivia Omar Oliver Patricia Paul Peter Priya Rachel
    Rahul Raj Rebecca Richard Robert Ryan Sam Samuel Sara Sarah Sofia Sophie Stephen Steven
    Susan Thomas Tim Tom Victoria William Yuki Zoe
    """
)
