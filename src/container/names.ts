// Docker-style generated names: "<adjective>_<name>" (Docker draws from a list of scientists).
import { randomInt } from 'node:crypto';

const LEFT = [
  'admiring', 'adoring', 'agitated', 'amazing', 'angry', 'awesome', 'blissful', 'bold', 'brave', 'busy', 'charming',
  'clever', 'cool', 'compassionate', 'confident', 'cranky', 'dazzling', 'determined', 'distracted', 'dreamy', 'eager',
  'ecstatic', 'elastic', 'elated', 'elegant', 'epic', 'festive', 'focused', 'friendly', 'frosty', 'gallant', 'gifted',
  'goofy', 'gracious', 'happy', 'hopeful', 'hungry', 'infallible', 'inspiring', 'jolly', 'keen', 'kind', 'laughing',
  'loving', 'lucid', 'magical', 'modest', 'musing', 'mystifying', 'nice', 'nifty', 'nostalgic', 'objective', 'optimistic',
  'peaceful', 'pensive', 'practical', 'priceless', 'quirky', 'quizzical', 'relaxed', 'reverent', 'romantic', 'serene',
  'sharp', 'silly', 'sleepy', 'stoic', 'strange', 'suspicious', 'sweet', 'tender', 'thirsty', 'trusting', 'upbeat',
  'vibrant', 'vigilant', 'vigorous', 'wizardly', 'wonderful', 'xenodochial', 'youthful', 'zealous', 'zen',
];
const RIGHT = [
  'agnesi', 'albattani', 'allen', 'archimedes', 'babbage', 'banach', 'bardeen', 'bartik', 'bell', 'blackwell', 'bohr',
  'booth', 'borg', 'bose', 'brahmagupta', 'burnell', 'cannon', 'carson', 'cerf', 'chandrasekhar', 'clarke', 'curie',
  'darwin', 'dijkstra', 'driscoll', 'easley', 'einstein', 'elion', 'engelbart', 'euclid', 'euler', 'fermat', 'fermi',
  'feynman', 'franklin', 'galileo', 'gauss', 'goldberg', 'goodall', 'hamilton', 'hawking', 'heisenberg', 'hopper',
  'hypatia', 'jackson', 'jennings', 'johnson', 'kalam', 'keller', 'kepler', 'knuth', 'lamarr', 'leakey', 'lovelace',
  'lumiere', 'mayer', 'mccarthy', 'meitner', 'mendel', 'mirzakhani', 'morse', 'napier', 'newton', 'noether', 'noyce',
  'pascal', 'pasteur', 'payne', 'perlman', 'pike', 'poincare', 'ramanujan', 'ritchie', 'rosalind', 'sammet', 'shannon',
  'shockley', 'sinoussi', 'stallman', 'swartz', 'tesla', 'thompson', 'torvalds', 'turing', 'varahamihira', 'wiles',
  'williams', 'wozniak', 'wright', 'yalow', 'yonath',
];

export function randomName(withSuffix = false): string {
  const n = `${LEFT[randomInt(LEFT.length)]}_${RIGHT[randomInt(RIGHT.length)]}`;
  return withSuffix ? `${n}${randomInt(10)}` : n;
}
