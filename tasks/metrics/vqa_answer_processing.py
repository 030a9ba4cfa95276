"""Answer normalisation of the official VQA evaluator (GT-Vision-Lab/VQA ``vqaEval.py``).

The tables below are the official ones, reproduced as data. The two processing steps keep
the official evaluator's quirks on purpose, because leaderboard numbers depend on them:

* :func:`process_punctuation` decides per punctuation mark, by looking at the *original*
  text, whether to delete the mark or replace it by a space: it is deleted when the mark
  touches a space anywhere in the text, or whenever the text holds a comma between two
  digits (``"10,000"``), in which case *every* listed mark is deleted. Periods are handled
  by a separate pattern, ``(?!<=\\d)(\\.)(?!\\d)``: its first group was meant as a
  look-behind but is a look-ahead, so in effect every period not followed by a digit is
  deleted (``"3.5"`` keeps its period, ``"5."`` loses it). The official call passes
  ``re.UNICODE`` (32) where ``re.sub`` expects ``count``, so at most 32 periods are
  deleted. Apostrophes, colons and periods are not in the punctuation list.
* :func:`process_digit_article` lower-cases, maps number words to digits (``"two"`` →
  ``"2"``, ``"none"`` → ``"0"``), drops the articles ``a``/``an``/``the`` and expands
  apostrophe-less contractions (``"dont"`` → ``"don't"``). The contraction table holds a few
  capitalised keys (``"Im"``, ``"Ive"``, ``"Id've"``) that can never match after
  lower-casing; they are kept so the table stays the official one.
"""
import re

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}

NUMBER_WORDS = {
    'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4',
    'five': '5', 'six': '6', 'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10',
}

ARTICLES = frozenset({'a', 'an', 'the'})

# The official list, in the official order (the order does not change the result).
PUNCTUATION = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-',
               '>', '<', '@', '`', ',', '?', '!']

COMMA_BETWEEN_DIGITS = re.compile(r'(\d)(,)(\d)')
# Kept verbatim: "(?!<=\d)" is a look-ahead (not the intended look-behind), see above.
PERIOD_NOT_BEFORE_DIGIT = re.compile(r'(?!<=\d)(\.)(?!\d)')
# The official code passes re.UNICODE in the position of re.sub's ``count``.
OFFICIAL_PERIOD_STRIP_COUNT = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """Delete or blank out punctuation exactly as the official VQA evaluator does."""
    delete_all = COMMA_BETWEEN_DIGITS.search(text) is not None
    processed = text
    for mark in PUNCTUATION:
        if delete_all or mark + ' ' in text or ' ' + mark in text:
            processed = processed.replace(mark, '')
        else:
            processed = processed.replace(mark, ' ')
    return PERIOD_NOT_BEFORE_DIGIT.sub('', processed, count=OFFICIAL_PERIOD_STRIP_COUNT)


def process_digit_article(text: str) -> str:
    """Lower-case, map number words to digits, drop articles, expand contractions."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return ' '.join(CONTRACTIONS.get(word, word) for word in words)


def blank_whitespace(text: str) -> str:
    """Newlines and tabs to spaces, then strip: the evaluator's first step on an answer."""
    return text.replace('\n', ' ').replace('\t', ' ').strip()


def normalize_predicted_answer(answer: str) -> str:
    """Normalise a model's answer the way the official evaluator normalises results."""
    return process_digit_article(process_punctuation(blank_whitespace(answer)))
